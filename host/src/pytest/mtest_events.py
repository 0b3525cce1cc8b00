"""mtest's event channel and run loop inside pytest (written out by mtest, loaded with -p).

One JSON object per line, each written with a single os.write() on an O_APPEND file, so
every event that was written survives a segfault, os._exit() or SIGKILL of this process.
A test's reports and `finish` are written together with the next test's `start` (or at
session end), so a test costs one write: nothing runs between one test's finish and the
next one's start that could crash and lose them.

Text is written as UTF-8 with lone surrogates passed through (`surrogatepass`): whatever a
test puts into its report, the line is written, and mtest decodes it lossily. `finish`
says how many reports the test produced, so a report mtest could not read is an error,
never a pass.

The same run loop serves both of mtest's executors:
  - process mode: this pytest process runs the ids in MTEST_SELECT, then ends;
  - fork mode (MTEST_ZYGOTE=fork): this process (the zygote) collects once, reports the
    items, and then only forks: a worker per batch that mtest sends on stdin, which then
    asks for more before its last test and may go on with the next batch (see _worker).

Environment (set by mtest, read once at import and then taken out of os.environ):
  MTEST_EVENTS   path of the event file (required, else this plugin does nothing)
  MTEST_COLLECT  "1": emit one `item` event per collected test, and collection progress
  MTEST_ZYGOTE   "collect": collect and end; "fork": collect, then serve fork commands
  MTEST_SELECT   path of a file with one node id per line: run only those, in that order
  MTEST_STACKS   path where SIGUSR1 dumps all threads' stacks (faulthandler)
  MTEST_STOP     path of a file whose existence means: stop after the current test
  MTEST_INITPATHS  process mode: path of a file with the run's collection's initial paths,
                 one a line (see _as_collected)
  MTEST_PYTHONPATH  PYTHONPATH as it was before mtest put this plugin's dir on it
  MTEST_MAXFAIL, MTEST_FAILING, MTEST_FORGIVEN  process mode: --max-fail (see _set_limit)
  MTEST_FOREGROUND  "1": one test run again on the user's terminal under pytest's
                 debugger (`mtest -- --pdb` / `--trace`): --pdb and --trace are allowed,
                 Ctrl-Z is the terminal's
"""

import faulthandler
import gc
import json
import os
import sys
import threading
import time

import pytest

# What mtest tells this process, read once and then taken out of the environment: the tests
# and every process they start see the environment plain pytest would give them (and, in a
# worker, pytest-xdist's PYTEST_XDIST_WORKER and PYTEST_XDIST_WORKER_COUNT).
_MTEST_VARS = ("MTEST_EVENTS", "MTEST_COLLECT", "MTEST_ZYGOTE", "MTEST_SELECT", "MTEST_STACKS",
               "MTEST_STOP", "MTEST_INITPATHS", "MTEST_PYTHONPATH", "MTEST_MAXFAIL",
               "MTEST_FAILING", "MTEST_FORGIVEN", "MTEST_FOREGROUND")
_env = {name: os.environ.pop(name) for name in _MTEST_VARS if name in os.environ}


def _give_back_the_path():
    """mtest put this plugin's directory first on PYTHONPATH, and said what it was before
    (MTEST_PYTHONPATH, empty for none): both go back as they were."""
    was = _env.pop("MTEST_PYTHONPATH", None)
    if was is None:
        return
    if was:
        os.environ["PYTHONPATH"] = was
    else:
        os.environ.pop("PYTHONPATH", None)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if not p or os.path.abspath(p) != here]


_give_back_the_path()
if _env.get("MTEST_EVENTS") and not faulthandler.is_enabled():
    # A crash's stack, also before pytest's own faulthandler plugin (conftests, plugins,
    # collection): into this process's stderr, which is mtest's log of it.
    faulthandler.enable(all_threads=True)

_fd = None
_pending = []
_collect = False
_stacks = None
_zygote = _env.get("MTEST_ZYGOTE")
# The zygote's pytest exit status, once its session has finished.
_zygote_status = None
# The zygote's command pipe (its stdin), kept before pytest's capture redirects fd 0.
_commands = os.dup(0) if _zygote == "fork" else None
_notices = []
# Reports written for the test in flight (`finish` carries the count).
_reports = 0
# Longest text kept in one field of an event: head and tail of this many characters each.
_CAP = 64 * 1024
_big_texts = 0


def _encode(text):
    return text.encode("utf-8", "surrogatepass")


def _dumps(event):
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)


def _emit(event, flush=True):
    _pending.append(_dumps(event))
    if flush:
        _flush()


def _write_all(data):
    _write_fd(_fd, data)


def _write_fd(fd, data):
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _flush():
    global _pending
    if _fd is None or not _pending:
        return
    data = _encode("\n".join(_pending) + "\n")
    _pending = []
    _write_all(data)


def _cap(text, what):
    """Head and tail of a long text; the whole of it goes to a file beside the events."""
    global _big_texts
    if text is None or len(text) <= 2 * _CAP:
        return text
    _big_texts += 1
    path = "%s.%d.%s.txt" % (_env.get("MTEST_EVENTS", "mtest"), _big_texts, what)
    try:
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        where = "the whole of it is in %s" % path
    except OSError as e:
        where = "it could not be saved (%s)" % e
    return "%s\n\n[... mtest cut %d characters here; %s ...]\n\n%s" % (
        text[:_CAP],
        len(text) - 2 * _CAP,
        where,
        text[-_CAP:],
    )


# Options that change what a run means: they do not run tests, so they cannot be records.
_META = [
    ("collectonly", "--collect-only"),
    ("setuponly", "--setup-only"),
    ("setupplan", "--setup-plan"),
    ("showfixtures", "--fixtures"),
    ("show_fixtures_per_test", "--fixtures-per-test"),
    ("cacheshow", "--cache-show"),
]

# Options mtest cannot honour (yet): refused in one line, never ignored.
_REFUSED = [
    ("stepwise", "--sw/--stepwise is not supported by mtest yet: `mtest -x --ff` runs the "
     "tests that failed last time first and stops at the first failure"),
    ("stepwise_skip", "--sw-skip is not supported by mtest yet: use mtest's --max-fail N"),
    ("usepdb", "--pdb works on mtest's command line only (`mtest -- --pdb`, on a terminal), "
     "not in addopts or PYTEST_ADDOPTS"),
    ("trace", "--trace works on mtest's command line only (`mtest -- --trace`, on a terminal), "
     "not in addopts or PYTEST_ADDOPTS"),
]
# Where mtest runs one test again under pytest's debugger, attached to the terminal.
_foreground = _env.get("MTEST_FOREGROUND") == "1"


# pytest's own -x / --maxfail, taken over (see pytest_cmdline_main).
_pytest_maxfail = 0


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Before xdist and junitxml see the options: mtest is the parallel runner and writes
    the JUnit XML, so several workers must neither start xdist nor write one file."""
    if not _env.get("MTEST_EVENTS"):
        return None
    opt = config.option
    n = getattr(opt, "numprocesses", None)
    if n or getattr(opt, "dist", "no") not in ("no", None):
        _notices.append(
            "pytest-xdist's -n %s is ignored: mtest runs the tests in parallel itself (use -j)"
            % (n if n is not None else "")
        )
        opt.numprocesses = None
        opt.dist = "no"
        if hasattr(opt, "tx"):
            opt.tx = []
    global _pytest_maxfail
    if getattr(opt, "maxfail", 0):
        # pytest's -x / --maxfail: mtest counts failing tests over every worker (each
        # pytest process would count only its own) and stops them all at the limit.
        _pytest_maxfail = opt.maxfail
        opt.maxfail = 0
    if not _zygote and getattr(opt, "cacheclear", False):
        opt.cacheclear = False  # the run's collection cleared it: a chunk must not again
    if getattr(opt, "xmlpath", None):
        _notices.append(
            "pytest's --junitxml=%s is not written under mtest: its JUnit XML is in "
            ".gates/last-run/" % opt.xmlpath
        )
        opt.xmlpath = None
    return None


def pytest_configure(config):
    global _fd, _collect, _stacks
    path = _env.get("MTEST_EVENTS")
    if not path or _fd is not None:
        return
    _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _collect = _env.get("MTEST_COLLECT") == "1"
    stacks = _env.get("MTEST_STACKS")
    if stacks:
        _register_stacks(stacks)
    if not _collect and not _foreground:  # a process-mode chunk: a worker (the zygote's
        _catch_pause()                       # forks do it there)
    _emit(
        {
            "e": "session_start",
            "pid": os.getpid(),
            "pytest": pytest.__version__,
            "python": sys.version.split()[0],
            "rootdir": str(config.rootpath),
        },
        flush=False,
    )
    for text in _notices:
        _emit({"e": "notice", "text": text}, flush=False)
    for attr, flag in _META:
        if getattr(config.option, attr, False):
            _emit({"e": "refused", "text": "%s does not run tests, so mtest cannot record "
                   "them; run plain pytest for it" % flag}, flush=False)
    for attr, text in _REFUSED:
        if _foreground and attr in ("usepdb", "trace"):
            continue
        if getattr(config.option, attr, False):
            _emit({"e": "refused", "text": "pytest's " + text}, flush=False)
    _flush()


def _cache_dir(config):
    """pytest's cache directory, where mtest writes `lastfailed` at the end of a run (None
    without the cacheprovider plugin)."""
    cache = getattr(config, "cache", None)
    path = getattr(cache, "_cachedir", None)
    return None if path is None else str(path)


def _chunk_keeps_out_of_the_cache(config):
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


def _on_pause(signum, frame):
    """Ctrl-Z (mtest sends SIGTSTP to each worker): pytest-timeout's timer is put aside
    while this worker's process group is stopped, and set again with what was left at
    SIGCONT, so a paused test does not time out."""
    import signal

    left = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        os.killpg(os.getpgid(0), signal.SIGSTOP)
    finally:
        if left[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *left)


def _catch_pause():
    import signal

    try:
        signal.signal(signal.SIGTSTP, _on_pause)
    except (ValueError, OSError, AttributeError):  # not the main thread; no SIGTSTP
        pass


def _register_stacks(path):
    global _stacks
    try:
        import faulthandler
        import signal

        if _stacks is not None:
            _stacks.close()
        _stacks = open(path, "w")
        faulthandler.register(signal.SIGUSR1, file=_stacks, all_threads=True)
    except Exception:  # no SIGUSR1 on this platform: no stack dump on hang
        _stacks = None


def _zygote_exit():
    """The zygote's last exit handler (registered before any other of pytest's session):
    its session has ended and every other handler has run, so it leaves without the
    interpreter's teardown of every collected test -- seconds at 100k tests, for
    nothing."""
    if _zygote_status is None:
        return  # pytest stopped before a session (a usage error): the normal way out
    try:
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(_zygote_status)


if _zygote:
    import atexit

    atexit.register(_zygote_exit)


_inherited = {}
_combined = {}  # (inherited names, own names) -> both, deduplicated


def _markers(item):
    """Marker names as a tuple, the item's own first, then its parents' (as
    `iter_markers`), with the parents' looked up once per parent, not once per
    parametrized case."""
    parent = item.parent
    inherited = _inherited.get(id(parent))
    if inherited is None:
        names = (m.name for m in parent.iter_markers()) if parent is not None else ()
        inherited = tuple(dict.fromkeys(names))
        _inherited[id(parent)] = inherited
    own = item.own_markers
    if not own:
        return inherited
    key = (inherited, tuple([m.name for m in own]))
    names = _combined.get(key)
    if names is None:
        names = _combined[key] = tuple(dict.fromkeys(key[1] + inherited))
    return names


def _group_of(item):
    """`@pytest.mark.xdist_group("name")`'s name, as pytest-xdist reads it."""
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
    return str(name)


def _timeout_of(item):
    mark = item.get_closest_marker("timeout")
    if mark is None:
        return None
    value = mark.args[0] if mark.args else mark.kwargs.get("timeout")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_relfiles = {}


def _relfile(item):
    path = str(item.path)
    rel = _relfiles.get(path)
    if rel is None:
        try:
            rel = os.path.relpath(path, str(item.config.rootpath)).replace(os.sep, "/")
        except Exception:
            rel = item.nodeid.split("::", 1)[0]
        _relfiles[path] = rel
    return rel


_lines = {}  # id of a test's function object -> its line


def _line(item):
    """The 1-based line of a test. `item.location` costs ~40 us a test (it inspects the
    source); for a plain function its code object says the same, once for all its
    parametrizations. The zygote must stay cheap: it does this for every test, serially."""
    if "location" in item.__dict__:
        return _location_line(item)
    obj = item.__dict__.get("_obj")  # the function a Function item was made with
    if obj is None:
        return _code_line(item)
    line = _lines.get(id(obj))
    if line is None:
        line = _lines[id(obj)] = _code_line(item)
    return line


def _code_line(item):
    function = getattr(item, "function", None)
    code = getattr(getattr(function, "__wrapped__", function), "__code__", None)
    if code is not None:
        return code.co_firstlineno
    return _location_line(item)


def _location_line(item):
    loc = item.location
    return (loc[1] + 1) if loc and loc[1] is not None else None


def pytest_collection_modifyitems(session, config, items):
    path = _env.get("MTEST_SELECT")
    if _fd is None or not path:
        return
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        order = {}
        for line in f:
            nodeid = line.rstrip("\n")
            if nodeid:
                order.setdefault(nodeid, len(order))
    keep, drop = [], []
    for item in items:
        (keep if item.nodeid in order else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    # Run in the order mtest's selection plugin chose (as pytest's own --ff reorders).
    keep.sort(key=lambda item: order[item.nodeid])
    items[:] = keep


def _is_file_collector(collector):
    directory = getattr(pytest, "Directory", None)
    return isinstance(collector, pytest.File) or (
        directory is not None and isinstance(collector, directory)
    )


def _as_collected(session):
    """A process-mode chunk names its files on pytest's command line, which would make
    them "initial paths": pytest rewrites the asserts of such a module and collects it
    even when it does not match `python_files`. The chunk's session takes the initial
    paths of the run's own collection instead, so each file is judged as it was there
    (and as under plain pytest)."""
    path = _env.get("MTEST_INITPATHS")
    if not path or not hasattr(session, "_initialpaths"):
        return
    from pathlib import Path

    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        session._initialpaths = frozenset(Path(line.rstrip("\n")) for line in f if line.strip())


def pytest_collectstart(collector):
    """Collection progress: a module that crashes or hangs on import is the last one
    started and not done."""
    if isinstance(collector, pytest.Session):
        # Its own collection starts after pytest has set its initial paths, before any
        # file is collected.
        if _fd is not None:
            _as_collected(collector)
        return
    if _fd is None or not _collect or not _is_file_collector(collector):
        return
    _emit({"e": "collect_start", "id": collector.nodeid, "path": str(collector.path),
           "t": time.time()})


# The zygote's items that carry a `timeout` marker (by id), known once collection is
# reported: a worker arms its timer for the others without looking (`_own_timer`).
_timeout_marked = set()
_marks_known = False


def pytest_collection_finish(session):
    global _marks_known
    if _fd is None or not _collect:
        return
    # One line a test, for every test, serially in the zygote (~10 us a test before these
    # caches: 0.6 s of a 64k-test collection): the parts shared by a module's tests (its
    # file) are encoded once per parent, a set of marker names once per set.
    quote = json.encoder.encode_basestring
    shared = {}
    marker_json = {}
    pend = _pending.append
    for item in session.items:
        parent = item.parent
        part = shared.get(id(parent))
        if part is None:
            part = shared[id(parent)] = ',"file":%s,"line":' % quote(_relfile(item))
        markers = _markers(item)
        names = marker_json.get(markers)
        if names is None:
            names = marker_json[markers] = _dumps(list(markers)) if markers else "[]"
        timeout = None
        if "timeout" in markers:
            timeout = _timeout_of(item)
            _timeout_marked.add(id(item))
        line = _line(item)
        group = _group_of(item) if "xdist_group" in markers else None
        pend(
            '{"e":"item","id":%s%s%s,"markers":%s,"timeout":%s%s}'
            % (
                quote(item.nodeid),
                part,
                "null" if line is None else int(line),
                names,
                "null" if timeout is None else _dumps(timeout),
                "" if group is None else ',"group":%s' % quote(group),
            )
        )
    _marks_known = True
    initial = getattr(session, "_initialpaths", None)
    _pending.append(_dumps({"e": "collected", "count": len(session.items),
                            "threads": _other_threads(),
                            "initpaths": None if initial is None else sorted(map(str, initial)),
                            "cache_dir": _cache_dir(session.config),
                            "maxfail": _pytest_maxfail or None}))
    _flush()


def pytest_collectreport(report):
    if _fd is None:
        return
    if report.failed:
        _emit({"e": "collect_error", "id": report.nodeid,
               "text": _cap(str(report.longrepr), "collect")}, flush=False)
    elif report.skipped and _collect:
        # A module that skips itself at import (`pytest.importorskip` at module level):
        # one skipped outcome under the module's id, as pytest counts it.
        _emit({"e": "collect_skip", "id": report.nodeid,
               "message": _cap(_crash_message(report), "message")}, flush=False)
    if _collect:
        _emit({"e": "collect_done", "id": report.nodeid, "t": time.time()})
    else:
        _flush()


_quote = json.encoder.encode_basestring


def pytest_runtest_logstart(nodeid, location):
    global _reports, _current, _failing_now
    if _fd is None:
        return
    _reports = 0
    _failing_now = False
    _current = nodeid
    # The hot path: formatted by hand, one write (with the previous test's events).
    line = '{"e":"start","id":%s,"t":%r}\n' % (_quote(nodeid), time.time())
    if _pending:
        _pending.append(line[:-1])
        _flush()
    else:
        _write_all(_encode(line))


def _crash_message(report):
    longrepr = report.longrepr
    if longrepr is None:
        return None
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (file, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    lookup = getattr(longrepr, "errorstring", None)  # a fixture lookup: pytest's reason
    if isinstance(lookup, str) and lookup.strip():
        return lookup.strip().splitlines()[0]
    text = str(longrepr).strip().splitlines()
    return text[-1] if text else None


def pytest_runtest_logreport(report):
    global _reports, _failing_now
    if _fd is None:
        return
    if report.failed:
        _failing_now = True
    if report.outcome == "passed" and report.when != "call":
        return  # setup and teardown passed: nothing to say
    subtest = type(report).__name__ == "SubtestReport"
    wasxfail = hasattr(report, "wasxfail")
    if report.outcome == "passed" and not wasxfail and not subtest:
        return  # a plain pass needs no event: no report means passed
    event = {
        "e": "report",
        "id": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": report.duration,
    }
    if wasxfail:
        event["wasxfail"] = True
    if subtest:
        event["subtest"] = getattr(report, "_sub_test_description", lambda: "subtest")()
    if report.outcome != "passed":
        event["message"] = _cap(_crash_message(report), "message")
        event["longrepr"] = _cap(report.longreprtext, "longrepr")
    if report.failed or subtest:
        if report.capstdout:
            event["stdout"] = _cap(report.capstdout, "stdout")
        if report.capstderr:
            event["stderr"] = _cap(report.capstderr, "stderr")
        if report.caplog:
            event["log"] = _cap(report.caplog, "log")
    _reports += 1
    # Written with the next `start` or at session end.
    _emit(event, flush=False)


# ---------------------------------------------------------------- processes left behind

def _read(path):
    # os.open/os.read: a tenth of the cost of open(), and this runs after every test.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _has_children():
    """One system call: does this process have any child, alive or not yet reaped?
    WNOWAIT leaves a finished child's status for whoever owns it."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return True
    except ChildProcessError:
        return False
    except (AttributeError, OSError):  # no waitid here: look every time
        return True


def _live_children():
    """pid -> command line of the live (not zombie) children of this process (Linux)."""
    me = os.getpid()
    pids = _read("/proc/%d/task/%d/children" % (me, me)).split()
    if threading.active_count() > 1:
        try:
            for tid in os.listdir("/proc/self/task"):
                if tid != str(me):
                    pids.extend(_read("/proc/self/task/%s/children" % tid).split())
        except OSError:
            pass
    out = {}
    for pid in pids:
        pid = int(pid)
        stat = _read("/proc/%d/stat" % pid)
        # A zombie (state Z) has finished: nothing to kill.
        if not stat or stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z":
            continue
        # Right after a fork the command line can still be empty: fall back to the name.
        cmd = _read("/proc/%d/cmdline" % pid).replace(b"\0", b" ").strip()
        if not cmd:
            cmd = stat[stat.find(b"(") + 1 : stat.rfind(b")")]
        out[pid] = cmd.decode("utf-8", "replace")[:200]
    return out


# pid -> (fixture name, scope, test whose setup started it): processes that a fixture
# wider than a function started. They are alive between tests on purpose; they are
# leaks only if they outlive their fixture's teardown.
_owned = {}
# pid -> what was said about it: a process is blamed once.
_reported = set()
_current = None  # node id of the test in flight
_leaks_at_teardown = []


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if _fd is None or fixturedef.scope == "function":
        yield
        return
    before = _live_children() if _has_children() else {}
    yield
    if _has_children():
        for pid in _live_children():
            if pid not in before:
                _owned[pid] = (fixturedef.argname, fixturedef.scope, _current)


def pytest_fixture_post_finalizer(fixturedef, request):
    if _fd is None or fixturedef.scope == "function" or not _owned:
        return
    alive = _live_children() if _has_children() else {}
    for pid, (name, scope, test) in list(_owned.items()):
        if name != fixturedef.argname or scope != fixturedef.scope:
            continue
        del _owned[pid]
        if pid in alive and pid not in _reported:
            _reported.add(pid)
            _leaks_at_teardown.append(
                {"pid": pid, "cmd": alive[pid],
                 "owner": "%s-scoped fixture `%s` (set up by %s)" % (scope, name, test)}
            )


def _leaked():
    """Processes the test in flight left running: children that no live wider-scoped
    fixture owns, plus what such a fixture left behind at its teardown."""
    global _leaks_at_teardown
    out = _leaks_at_teardown
    _leaks_at_teardown = []
    if _has_children():
        for pid, cmd in _live_children().items():
            if pid in _owned or pid in _reported:
                continue
            _reported.add(pid)
            out.append({"pid": pid, "cmd": cmd})
    return out or None


_known_threads = None


def _other_threads():
    """Names of live non-daemon threads other than the main one."""
    return [t.name for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon]


def _new_threads():
    """Non-daemon threads that appeared since the last look (cheap when there are none)."""
    global _known_threads
    if threading.active_count() <= 1 and not _known_threads:
        return None
    live = {t.ident: t.name for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon}
    known = _known_threads or {}
    new = [name for ident, name in live.items() if ident not in known]
    _known_threads = live
    return new or None


_session = None
_stop = _env.get("MTEST_STOP")
# What a worker stopped by mtest's stop file says (mtest's own stop, not pytest's).
STOP_ASKED = "mtest asked to stop"

# --max-fail (mtest's, or pytest's own -x/--maxfail taken over): (how many failing tests
# end the run, the file where every worker appends the id of each of its failing tests,
# the ids whose failures do not count: quarantined and flaky). A worker counts them all,
# so each stops right after the test that reaches the limit, not when mtest reads it.
_limit = None
_failing_now = False
_failing_seen = (-1, False)  # (size of the file when last read, over the limit)


def _set_limit(max_fail, failing, forgiven):
    global _limit
    if not max_fail or not failing:
        _limit = None
        return
    ids = set()
    if forgiven:
        try:
            with open(forgiven, encoding="utf-8", errors="surrogateescape") as f:
                ids = {line.rstrip("\n") for line in f}
        except OSError:
            pass
    _limit = (int(max_fail), failing, ids)


def _over_the_limit(nodeid):
    """Writes down the test in flight if it failed; says whether the run's failing tests
    (every worker's, each test once) reached the limit. Writes the stop file then, so the
    other workers stop after their current test too."""
    global _failing_seen
    limit, path, forgiven = _limit
    if _failing_now and nodeid not in forgiven:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _write_fd(fd, _encode(nodeid + "\n"))
        finally:
            os.close(fd)
    try:
        size = os.stat(path).st_size
    except OSError:
        return False
    if size == _failing_seen[0]:
        return _failing_seen[1]
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        over = len({line for line in f if line.strip()}) >= limit
    _failing_seen = (size, over)
    if over and _stop and not os.path.exists(_stop):
        try:
            with open(_stop, "w") as f:
                f.write("--max-fail: %d failing test(s)" % limit)
        except OSError:
            pass
    return over


_set_limit(_env.get("MTEST_MAXFAIL"), _env.get("MTEST_FAILING"), _env.get("MTEST_FORGIVEN"))


def pytest_sessionstart(session):
    global _session
    _session = session
    if _fd is not None and not _zygote:
        _chunk_keeps_out_of_the_cache(session.config)


def pytest_runtest_logfinish(nodeid, location):
    global _current
    if _fd is None:
        return
    over = _limit is not None and _over_the_limit(nodeid)
    if _stop and _session is not None and (over or os.path.exists(_stop)):
        # mtest says stop (the --budget ran out, --max-fail): end the session after
        # this test, cleanly.
        _session.shouldstop = STOP_ASKED
    _current = None
    now = time.time()
    leaked = _leaked()
    threads = _new_threads() if threading.active_count() > 1 or _known_threads else None
    if leaked or threads:
        event = {"e": "finish", "id": nodeid, "t": now, "n": _reports}
        if leaked:
            event["leaked"] = leaked
        if threads:
            event["threads"] = threads
        _emit(event, flush=False)
    else:
        _pending.append('{"e":"finish","id":%s,"t":%r,"n":%d}' % (_quote(nodeid), now, _reports))


def pytest_internalerror(excrepr, excinfo):
    if _fd is None:
        return
    _emit({"e": "internal_error", "text": _cap(str(excrepr), "internal")})


def pytest_sessionfinish(session, exitstatus):
    global _zygote_status
    if _fd is None:
        return
    if _zygote:
        _zygote_status = int(exitstatus)
    _emit({"e": "session_finish", "exitstatus": int(exitstatus)})


# ---------------------------------------------------------------- the run loop

def _aborted(item, kind, message, text):
    """A test ended pytest's session (KeyboardInterrupt, pytest.exit(), a hook raising):
    it gets its own outcome; mtest runs the tests after it in a new worker."""
    _emit({"e": "aborted", "id": item.nodeid, "kind": kind, "message": message,
           "text": _cap(text, "aborted"), "t": time.time(), "n": _reports})


# pytest-timeout's timer, once a worker has taken it over (see _own_timer): (the plugin,
# the settings of a test without a marker, its handler); False: pytest-timeout keeps it.
_timer = None


def _own_timer(session):
    """pytest-timeout's per-test hooks cost ~4% of a quick test's run (its settings read
    twice, three hook calls, a handler installed and removed). Where its plain setup is in
    use for every test of the session -- the signal method over the whole test, no session
    timeout, no debugger, no other plugin timing tests -- the run loop arms the same timer
    itself and those hooks go: a timeout still ends in pytest-timeout's own handler (its
    stack dump, its message). Decided once per process, for all its batches: a worker's
    later batches find the plugin gone and must go on timing (see `_settings_of`).
    Returns the timer, or None (pytest-timeout then works as ever)."""
    global _timer
    if _timer is None:
        _timer = _take_timer(session) or False
    return _timer or None


def _take_timer(session):
    config = session.config
    pm = config.pluginmanager
    plugin = pm.get_plugin("timeout")
    if plugin is None:
        return None
    try:
        if (config._env_timeout_method != "signal" or config._env_timeout_func_only
                or config.stash.get(plugin.SESSION_EXPIRE_KEY, None)
                or config.getoption("usepdb", False) or config.getoption("trace", False)
                or threading.current_thread() is not threading.main_thread()):
            return None
        if any(impl.plugin is not plugin
               for impl in config.hook.pytest_timeout_set_timer.get_hookimpls()):
            return None
        plain = plugin.Settings(config._env_timeout, "signal", False,
                                config._env_timeout_disable_debugger_detection)
        # Every test with a marker of its own, in every batch this process may run.
        for item in session.items:
            if not _has_timeout_marker(item):
                continue
            mine = plugin._get_item_settings(item)
            if mine.method != "signal" or mine.func_only:
                return None
        fire = plugin.timeout_sigalrm
    except Exception:
        return None  # another pytest-timeout than the one this was written against
    pm.unregister(plugin)
    return plugin, plain, fire


def _settings_of(timer, item):
    """A test's pytest-timeout settings under the run loop's own timer. A worker's batch
    can be 15k tests: only those with a marker are looked at again (~5 us a test)."""
    plugin, plain, _ = timer
    return plugin._get_item_settings(item) if _has_timeout_marker(item) else plain


def _has_timeout_marker(item):
    """Whether a test carries a `timeout` marker: from the collection's note where the
    zygote collected (cheap: a set lookup), else by looking."""
    if _marks_known and id(item) not in _timeout_marked:
        return False
    return item.get_closest_marker("timeout") is not None


_alarm = None  # (item, its settings, pytest-timeout's handler) while its timer runs


def _on_alarm(signum, frame):
    __tracebackhide__ = True
    item, settings, fire = _alarm
    fire(item, settings)


def _run_items(session, items, ask=None):
    """pytest's run loop over `items`, with what a test can do to end it caught.

    `ask` (a worker that may be given more): called before the last item, it returns the
    next batch's command or None; the last item then runs with the next batch's first item
    as its `nextitem`, so pytest keeps the fixtures both need (the session's, a module's)
    as it does between any two tests. Returns that command when the batch ran to its end."""
    import signal
    import traceback

    from _pytest.outcomes import Exit

    global _alarm
    hook = session.config.hook
    timer = _own_timer(session)
    following = None
    for i, item in enumerate(items):
        nextitem = items[i + 1] if i + 1 < len(items) else None
        if nextitem is None and ask is not None:
            following = ask()
            if following is not None:
                nextitem = session.items[following["items"][0]]
        armed = False
        try:
            if timer is not None:
                settings = _settings_of(timer, item)
                if settings.timeout is not None and settings.timeout > 0:
                    _alarm = (item, settings, timer[2])
                    signal.signal(signal.SIGALRM, _on_alarm)
                    armed = True
                    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
            hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        except KeyboardInterrupt:
            if _mtest_interrupted():
                raise
            _aborted(item, "interrupt", "KeyboardInterrupt raised in the test",
                     traceback.format_exc())
            return
        except Exit as e:
            _aborted(item, "exit", "pytest.exit() called in the test: %s" % (e.msg,),
                     traceback.format_exc())
            return
        except BaseException as e:  # a hook or plugin raised: pytest's INTERNALERROR
            _aborted(item, "internal", "INTERNALERROR: %s: %s" % (type(e).__name__, e),
                     traceback.format_exc())
            return
        finally:
            if armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
        if session.shouldfail or session.shouldstop:
            _emit({"e": "stopped", "why": str(session.shouldfail or session.shouldstop)})
            return
    return following


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    if _fd is None:
        return None
    if any(getattr(session.config.option, attr, False) for attr, _ in _META):
        return None
    if _zygote == "collect":
        return True
    if _zygote == "fork":
        _serve(session)
        return True
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # a process-mode chunk: mtest named its worker
        _become_worker(session.config, worker,
                       os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"),
                       os.environ.get("PYTEST_XDIST_TESTRUNUID", ""))
    _run_items(session, session.items)
    # Every test's events are written now; what follows is pytest's session end (its
    # sessionfinish hooks, which may hang: mtest bounds it by session-end-timeout).
    _emit({"e": "tests_done"})
    return True


# ---------------------------------------------------------------- fork mode

_workers = {}  # pid -> worker number
_pidfds = {}  # pid -> its pidfd (None where the platform has none)
_links = {}  # pid -> the zygote's end of a worker's link (a worker that may be given more)
_link = None  # in a worker: its end of that link


def _serve(session):
    """The zygote: read one command a line on stdin, fork a worker for each batch, report
    every worker's pid and exit status. EOF on stdin (mtest died): kill them all, leave."""
    import select
    import signal

    threads = _other_threads()
    if threads:
        _emit({"e": "no_fork", "why": "threads running after collection: %s" % ", ".join(threads)})
        _wait_for_quit()
        return
    _freeze()
    _emit({"e": "ready", "pid": os.getpid()})
    stdin = _commands
    buf = b""
    while True:
        # A worker's pidfd becomes readable when it exits: reaped at once, not on a tick.
        pidfds = [fd for fd in _pidfds.values() if fd is not None]
        tick = 0.2 if len(pidfds) == len(_workers) else 0.01
        links = list(_links.items())
        readable, _, _ = select.select([stdin] + pidfds + [l for _, l in links], [], [], tick)
        for pid, link in links:
            if link in readable:
                _relay_want(pid, link)
        _reap()
        if stdin not in readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            for pid in list(_workers):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            os._exit(0)
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            command = json.loads(line)
            if command.get("c") == "quit":
                while _workers:
                    _reap(block=True)
                return
            if command.get("c") == "fork":
                _fork(session, command)
            elif command.get("c") in ("next", "done"):
                # mtest's answer to a worker's `want`, passed on to it.
                link = _links.get(command.get("pid"))
                if link is not None:
                    try:
                        link.sendall(line + b"\n")
                    except OSError:
                        pass  # it died: its exit says so


# What a frozen heap answers differently: `gc.freeze`, `unfreeze` and `get_freeze_count`
# thaw first (wrapped); `gc.get_objects` and `gc.get_referrers` raise an audit event
# before they walk, on which the heap is thawed (a wrapper of these would be a frame of
# its own, which `get_referrers` would then list as a referrer).
_FREEZE_CALLS = ("freeze", "unfreeze", "get_freeze_count")
_HEAP_WALKS = ("gc.get_objects", "gc.get_referrers")
_gc_unfreeze = gc.unfreeze
_frozen = False


def _freeze():
    """Everything collection built goes out of the cyclic collector's sight (Python's docs
    advise this before forking): the zygote's session end does not scan it (pytest
    collects garbage there: ~1.4 s at 100k tests), and a worker's collections do not
    write to every object's header, which would copy the whole collected heap into each
    fork (~10% of a 64k-test run).

    A test must still see the heap plain pytest gives it: the first time anything in a
    process walks it (`gc.get_objects`, `gc.get_referrers`: leak checks, hypothesis'
    `register_random`; seen through their audit events, whatever name they are called
    by) or freezes it itself, that process gives the frozen objects back to the
    collector first. The freeze calls are replaced in `gc` and wherever a module took
    one before (`from gc import freeze`)."""
    global _frozen
    sys.addaudithook(_on_audit)
    originals = {name: getattr(gc, name) for name in _FREEZE_CALLS if hasattr(gc, name)}
    wrappers = {id(f): _thawing(f) for f in originals.values()}
    for name, original in originals.items():
        setattr(gc, name, wrappers[id(original)])
    for module in list(sys.modules.values()):
        names = getattr(module, "__dict__", None)
        if module is gc or not isinstance(names, dict):
            continue
        for key, value in list(names.items()):
            wrapper = wrappers.get(id(value))
            if wrapper is not None and value is getattr(wrapper, "__wrapped__", None):
                names[key] = wrapper
    gc.freeze.__wrapped__()
    _frozen = True


def _thaw():
    global _frozen
    if _frozen:
        _frozen = False
        _gc_unfreeze()


def _on_audit(event, args):
    """An audit hook (it cannot be removed: after the thaw it only looks at a flag)."""
    if _frozen and event in _HEAP_WALKS:
        _thaw()


def _thawing(walker):
    import functools

    @functools.wraps(walker)
    def thawed(*args, **kwargs):
        _thaw()
        return walker(*args, **kwargs)

    return thawed


def _relay_want(pid, link):
    """Worker `pid` is about to run the last test of its batch and asks for more: mtest
    decides."""
    try:
        data = link.recv(4096)
    except OSError:
        data = b""
    if not data:  # the worker is gone
        _links.pop(pid, None)
        link.close()
        return
    _emit({"e": "want", "pid": pid})


def _wait_for_quit():
    buf = b""
    while b'"quit"' not in buf:
        chunk = os.read(_commands, 65536)
        if not chunk:
            return
        buf += chunk


def _reap(block=False):
    for pid in list(_workers):
        try:
            got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            got, status = pid, -1
        if got == pid:
            worker = _workers.pop(pid)
            fd = _pidfds.pop(pid, None)
            if fd is not None:
                os.close(fd)
            link = _links.pop(pid, None)
            if link is not None:
                link.close()
            _emit({"e": "exited", "w": worker, "pid": pid, "status": status})
            if block:
                return


def _fork(session, command):
    global _link
    sys.stdout.flush()
    sys.stderr.flush()
    pair = None
    if command.get("more"):
        import socket

        pair = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            if pair is not None:
                pair[0].close()
                _link = pair[1]
            code = _worker(session, command)
        except BaseException:
            try:
                import traceback

                traceback.print_exc()
            except BaseException:
                pass
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child did it first
    _workers[pid] = command["w"]
    if pair is not None:
        pair[1].close()
        _links[pid] = pair[0]
    try:
        _pidfds[pid] = os.pidfd_open(pid)
    except (AttributeError, OSError):
        _pidfds[pid] = None
    _emit({"e": "forked", "w": command["w"], "pid": pid})


def _mtest_interrupted():
    """Whether a KeyboardInterrupt came from mtest (Ctrl-C), which writes "interrupted"
    into the stop file before it sends SIGINT: it then ends the worker. One a test raises
    on its own is that test's outcome. (SIGINT keeps Python's own handler, as under
    pytest: tests look at it.)"""
    if not _stop:
        return False
    try:
        with open(_stop, encoding="utf-8", errors="replace") as f:
            return f.read(16).startswith("interrupted")
    except OSError:
        return False


def _worker(session, command):
    """A forked worker: its own process group, output, event file and stack file; runs
    its batch through pytest's run loop and exits without pytest's session end (the
    zygote has that). A worker with a link to the zygote asks for more before the last
    test of each batch and, given a next batch, goes on with it in the same process (its
    session fixtures and imports stay, as in an xdist worker); each batch has its own
    event file, log and stack file."""
    global _pending, _known_threads
    import signal

    if not command.get("gc_freeze", True):
        _thaw()
    os.setpgid(0, 0)
    try:  # die with the zygote
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    _catch_pause()
    os.close(_commands)  # the zygote's command pipe: not for tests to read
    for fd in _pidfds.values():  # the zygote's handles on the other workers
        if fd is not None:
            os.close(fd)
    _pidfds.clear()
    _workers.clear()
    for link in _links.values():  # the zygote's ends of the other workers' links
        link.close()
    _links.clear()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    _pending = []
    _known_threads = None
    _become_worker(session.config, command["worker"], command["workers"], command["run"])
    config = session.config
    ask = _ask_more if _link is not None else None
    items = session.items
    while True:
        _begin_batch(session, command)
        batch = [items[i] for i in command["items"]]
        following = None
        try:
            following = _run_items(session, batch, ask)
            if following is None:
                # After a test ended the loop early, its fixtures are still set up.
                session._setupstate.teardown_exact(None)
        except KeyboardInterrupt:
            _flush()
            return 130
        except Exception as e:
            following = None
            _emit({"e": "notice", "text": "worker %d: fixture teardown at its end failed: %s"
                   % (command["w"], e)})
        if following is None:
            break
        _emit({"e": "session_finish", "exitstatus": 0})
        command = following
    _save_coverage(config)
    _emit({"e": "session_finish", "exitstatus": 0})
    return 0


def _begin_batch(session, command):
    """Points the worker at a batch's own event file, log and stack file, and starts it."""
    global _fd, _stop
    config = session.config
    _flush()
    os.close(_fd)
    _fd = os.open(command["events"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _env["MTEST_EVENTS"] = command["events"]

    # Output: the batch's own log, and a capture of the worker's own (the zygote's
    # capture files are shared with every other fork); the capture is restarted so that
    # it puts the new log back between tests.
    log = os.open(command["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.stop_global_capturing()
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        if fault_handler_stderr_fd_key in config.stash:
            os.dup2(log, config.stash[fault_handler_stderr_fd_key])
    except Exception:
        pass
    os.close(log)
    if command.get("unbuffered"):
        # A crash loses captured output: tee it, unbuffered, into the log.
        import io

        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False),
                                      write_through=True, line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False),
                                      write_through=True, line_buffering=True)
        if capman is not None and capman._method != "no":
            capman._method = "tee-sys"
    if capman is not None:
        # With -s too: pytest's capture manager reads its global capture (an empty one
        # under -s) after every test, and fails the test when there is none.
        capman.start_global_capturing()
        capman.suspend_global_capture()
    if command.get("stacks"):
        _register_stacks(command["stacks"])
    _stop = command.get("stop") or None
    _set_limit(command.get("max_fail"), command.get("failing"), command.get("forgiven"))

    _emit({"e": "session_start", "pid": os.getpid(), "pytest": pytest.__version__,
           "python": sys.version.split()[0], "rootdir": str(config.rootpath)})
    # Collection errors were counted in the zygote and are recorded apart.
    session.testsfailed = 0
    session.shouldfail = False
    session.shouldstop = False


def _become_worker(config, name, count, run):
    """A worker's identity as pytest-xdist gives one, so that per-worker resources
    (databases, ports, directories) named by it do not collide: PYTEST_XDIST_WORKER (which
    also marks the processes its tests start, for mtest to know them) and its siblings,
    and `config.workerinput` (xdist's `worker_id` and `testrun_uid` fixtures,
    pytest-django's database suffix read it). Set as the run loop starts: pytest's
    configuration and session start ran once, as on xdist's controller, and plugins that
    take `workerinput` there for an xdist controller to report to (pytest-cov) see none."""
    os.environ["PYTEST_XDIST_WORKER"] = name
    os.environ["PYTEST_XDIST_WORKER_COUNT"] = str(count)
    os.environ["PYTEST_XDIST_TESTRUNUID"] = run
    if getattr(config, "workerinput", None) is None:
        config.workerinput = {"workerid": name, "workercount": int(count),
                              "testrunuid": run, "mainargv": list(sys.argv)}


def _ask_more():
    """Asks mtest (through the zygote) for a next batch: its command, or None (end)."""
    _flush()
    buf = b""
    try:
        _link.sendall(b"want\n")
        while not buf.endswith(b"\n"):
            chunk = _link.recv(1 << 20)
            if not chunk:
                return None
            buf += chunk
        command = json.loads(buf)
    except (OSError, ValueError):
        return None
    if command.get("c") != "next" or not command.get("items"):
        return None
    return command


def _save_coverage(config):
    """pytest-cov measures in the zygote and so in every fork; each worker saves its own
    data file (coverage picks a new name after a fork) and the zygote combines them all
    at its end, as pytest-cov does under xdist."""
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    cov = getattr(controller, "cov", None)
    if cov is None:
        return
    try:
        cov.stop()
        cov.save()
    except Exception as e:
        _emit({"e": "notice", "text": "coverage data of worker %d not saved: %s"
               % (os.getpid(), e)})
