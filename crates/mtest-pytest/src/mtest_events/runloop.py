"""The run loop: pytest's protocol over a chunk of items with what a test can do to end it
caught; the stop file and --max-fail."""

import os

import pytest

from . import channel, dependencies, options, reporting, timeouts, zygote
from .state import S


# What a worker stopped by mtest's stop file says (mtest's own stop, not pytest's).
STOP_ASKED = "mtest asked to stop"


def set_limit(max_fail, failing, forgiven):
    if not max_fail or not failing:
        S.limit = None
        return
    ids = set()
    if forgiven:
        try:
            with open(forgiven, encoding="utf-8", errors="surrogateescape") as f:
                ids = {line.rstrip("\n") for line in f}
        except OSError:
            pass
    S.limit = (int(max_fail), failing, ids)


def over_the_limit(nodeid):
    """Writes down the test in flight if it failed; says whether the run's failing tests
    (every worker's, each test once) reached the limit. Writes the stop file then, so the
    other workers stop after their current test too."""
    limit, path, forgiven = S.limit
    if S.failing_now and nodeid not in forgiven:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            channel.write_fd(fd, channel.encode(nodeid + "\n"))
        finally:
            os.close(fd)
    try:
        size = os.stat(path).st_size
    except OSError:
        return False
    if size == S.failing_seen[0]:
        return S.failing_seen[1]
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        over = len({line for line in f if line.strip()}) >= limit
    S.failing_seen = (size, over)
    if over and S.stop and not os.path.exists(S.stop):
        try:
            with open(S.stop, "w") as f:
                f.write("--max-fail: %d failing test(s)" % limit)
        except OSError:
            pass
    return over


def run_items(session, items, ask=None):
    """pytest's run loop over `items`, with what a test can do to end it caught.

    `ask` (a worker that may be given more): called before the last item, it returns the
    next chunk's command or None; the last item then runs with the next chunk's first item
    as its `nextitem`, so pytest keeps the fixtures both need (the session's, a module's)
    as it does between any two tests. Returns that command when the chunk ran to its end."""
    import signal
    import traceback

    from _pytest.outcomes import Exit

    hook = session.config.hook
    timer = timeouts.own_timer(session)
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
                settings = timeouts.settings_of(timer, item)
                if settings.timeout is not None and settings.timeout > 0:
                    S.alarm = (item, settings, timer[2])
                    signal.signal(signal.SIGALRM, timeouts.on_alarm)
                    armed = True
                    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
            dependencies.begin(item)
            hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        except KeyboardInterrupt:
            if mtest_interrupted():
                raise
            reporting.aborted(item, "interrupt", "KeyboardInterrupt raised in the test",
                              traceback.format_exc())
            return
        except Exit as e:
            reporting.aborted(item, "exit", "pytest.exit() called in the test: %s" % (e.msg,),
                              traceback.format_exc())
            return
        except BaseException as e:  # a hook or plugin raised: pytest's INTERNALERROR
            reporting.aborted(item, "internal", "INTERNALERROR: %s: %s" % (type(e).__name__, e),
                              traceback.format_exc())
            return
        finally:
            if armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
        if session.shouldfail or session.shouldstop:
            channel.emit({"e": "stopped", "why": str(session.shouldfail or session.shouldstop)})
            return
    return following


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    if S.fd is None:
        return None
    if any(getattr(session.config.option, attr, False) for attr, _ in options.META):
        return None
    if S.zygote == "collect":
        return True
    if S.zygote == "fork":
        zygote.serve(session)
        return True
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # a process-mode chunk: mtest named its worker
        zygote.become_worker(session.config, worker,
                             os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"),
                             os.environ.get("PYTEST_XDIST_TESTRUNUID", ""))
    run_items(session, session.items)
    # Every test's events are written now; what follows is pytest's session end (its
    # sessionfinish hooks, which may hang: mtest bounds it by session-end-timeout).
    channel.emit({"e": "tests_done"})
    return True


def mtest_interrupted():
    """Whether a KeyboardInterrupt came from mtest (Ctrl-C), which writes "interrupted"
    into the stop file before it sends SIGINT: it then ends the worker. One a test raises
    on its own is that test's outcome. (SIGINT keeps Python's own handler, as under
    pytest: tests look at it.)"""
    if not S.stop:
        return False
    try:
        with open(S.stop, encoding="utf-8", errors="replace") as f:
            return f.read(16).startswith("interrupted")
    except OSError:
        return False
