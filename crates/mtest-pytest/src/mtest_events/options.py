"""What mtest changes in pytest's options (xdist's -n, -x/--maxfail, --junitxml) and what it
refuses in one line; the session's first events."""

import os
import sys

import pytest

from . import channel, system, timeouts
from .state import S


# Options that change what a run means: they do not run tests, so they cannot be records.
META = [
    ("collectonly", "--collect-only"),
    ("setuponly", "--setup-only"),
    ("setupplan", "--setup-plan"),
    ("showfixtures", "--fixtures"),
    ("show_fixtures_per_test", "--fixtures-per-test"),
    ("cacheshow", "--cache-show"),
]


# Options mtest cannot honour (yet): refused in one line, never ignored.
REFUSED = [
    ("stepwise", "--sw/--stepwise is not supported by mtest yet: `mtest -x --ff` runs the "
     "tests that failed last time first and stops at the first failure"),
    ("stepwise_skip", "--sw-skip is not supported by mtest yet: use mtest's --max-fail N"),
    ("usepdb", "--pdb works on mtest's command line only (`mtest -- --pdb`, on a terminal), "
     "not in addopts or PYTEST_ADDOPTS"),
    ("trace", "--trace works on mtest's command line only (`mtest -- --trace`, on a terminal), "
     "not in addopts or PYTEST_ADDOPTS"),
]


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Before xdist and junitxml see the options: mtest is the parallel runner and writes
    the JUnit XML, so several workers must neither start xdist nor write one file."""
    if not S.env.get("MTEST_EVENTS"):
        return None
    opt = config.option
    n = getattr(opt, "numprocesses", None)
    if n or getattr(opt, "dist", "no") not in ("no", None):
        S.notices.append(
            "pytest-xdist's -n %s is ignored: mtest runs the tests in parallel itself (use -j)"
            % (n if n is not None else "")
        )
        opt.numprocesses = None
        opt.dist = "no"
        if hasattr(opt, "tx"):
            opt.tx = []
    if getattr(opt, "maxfail", 0):
        # pytest's -x / --maxfail: mtest counts failing tests over every worker (each
        # pytest process would count only its own) and stops them all at the limit.
        S.pytest_maxfail = opt.maxfail
        opt.maxfail = 0
    if not S.zygote and getattr(opt, "cacheclear", False):
        opt.cacheclear = False  # the run's collection cleared it: a chunk must not again
    if getattr(opt, "xmlpath", None):
        S.notices.append(
            "pytest's --junitxml=%s is not written under mtest: its JUnit XML is in "
            ".gates/last-run/" % opt.xmlpath
        )
        opt.xmlpath = None
    return None


def pytest_configure(config):
    path = S.env.get("MTEST_EVENTS")
    if not path or S.fd is not None:
        return
    S.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    S.collect = S.env.get("MTEST_COLLECT") == "1"
    stacks = S.env.get("MTEST_STACKS")
    if stacks:
        register_stacks(stacks)
    if S.env.get("MTEST_SUPERVISOR_PID"):
        system.watch_supervisor(S.env["MTEST_SUPERVISOR_PID"])
    if not S.foreground:
        system.break_is_interrupt()
    if not S.collect and not S.foreground:  # a process-mode chunk: a worker (the zygote's
        timeouts.catch_pause()                       # forks do it there)
    channel.emit(
        {
            "e": "session_start",
            "pid": os.getpid(),
            "pytest": pytest.__version__,
            "python": sys.version.split()[0],
            "rootdir": str(config.rootpath),
        },
        flush=False,
    )
    for text in S.notices:
        channel.emit({"e": "notice", "text": text}, flush=False)
    for attr, flag in META:
        if getattr(config.option, attr, False):
            channel.emit({"e": "refused", "text": "%s does not run tests, so mtest cannot record "
                          "them; run plain pytest for it" % flag}, flush=False)
    for attr, text in REFUSED:
        if S.foreground and attr in ("usepdb", "trace"):
            continue
        if getattr(config.option, attr, False):
            channel.emit({"e": "refused", "text": "pytest's " + text}, flush=False)
    channel.write_pending()


def cache_dir(config):
    """pytest's cache directory, where mtest writes `lastfailed` at the end of a run (None
    without the cacheprovider plugin)."""
    cache = getattr(config, "cache", None)
    path = getattr(cache, "_cachedir", None)
    return None if path is None else str(path)


def chunk_keeps_out_of_the_cache(config):
    """A process-mode chunk is one of several pytest processes at once: pytest's own
    entries in the cache (`lastfailed`, `nodeids`, `stepwise`) are written by the run's
    collection and by mtest at its end, not by each chunk over the others (a test's own
    `cache.set` still goes to the cache, as under pytest-xdist)."""
    pm = config.pluginmanager
    for name in ("lfplugin", "lfplugin-collwrapper", "lfplugin-collskip", "nfplugin",
                 "stepwiseplugin"):
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)


def register_stacks(path):
    try:
        import faulthandler
        import signal

        if S.stacks is not None:
            S.stacks.close()
        S.stacks = open(path, "w")
        faulthandler.register(signal.SIGUSR1, file=S.stacks, all_threads=True)
    except Exception:  # no SIGUSR1 on this platform: no stack dump on hang
        S.stacks = None
