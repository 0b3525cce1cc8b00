"""mtest's event channel inside pytest (written out by mtest and loaded with -p).

One JSON object per line, each written with a single os.write() on an O_APPEND file, so
every event that was written survives a segfault, os._exit() or SIGKILL of this process.
A test's reports and `finish` are written together with the next test's `start` (or at
session end), so a test costs one write: nothing runs between one test's finish and the
next one's start that could crash and lose them.

Environment (set by mtest, read once):
  MTEST_EVENTS   path of the event file (required, else this plugin does nothing)
  MTEST_COLLECT  "1": emit one `item` event per collected test
  MTEST_SELECT   path of a file with one node id per line: run only those, in that order
  MTEST_STACKS   path where SIGUSR1 dumps all threads' stacks (faulthandler)
  MTEST_STOP     path of a file whose existence means: stop after the current test
"""

import json
import os
import sys
import threading
import time

_fd = None
_pending = []
_collect = False
_stacks = None


def _emit(event, flush=True):
    _pending.append(json.dumps(event, separators=(",", ":"), default=str))
    if flush:
        _flush()


def _flush():
    global _pending
    if _fd is None or not _pending:
        return
    data = ("\n".join(_pending) + "\n").encode("utf-8", "surrogateescape")
    _pending = []
    while data:
        written = os.write(_fd, data)
        data = data[written:]


def pytest_configure(config):
    global _fd, _collect, _stacks
    path = os.environ.get("MTEST_EVENTS")
    if not path or _fd is not None:
        return
    _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _collect = os.environ.get("MTEST_COLLECT") == "1"
    stacks = os.environ.get("MTEST_STACKS")
    if stacks:
        try:
            import faulthandler
            import signal

            _stacks = open(stacks, "w")
            faulthandler.register(signal.SIGUSR1, file=_stacks, all_threads=True)
        except Exception:  # no SIGUSR1 on this platform: no stack dump on hang
            _stacks = None
    import pytest

    _emit(
        {
            "e": "session_start",
            "pid": os.getpid(),
            "pytest": pytest.__version__,
            "python": sys.version.split()[0],
            "rootdir": str(config.rootpath),
        }
    )


def _markers(item):
    out = []
    seen = set()
    for mark in item.iter_markers():
        if mark.name not in seen:
            seen.add(mark.name)
            out.append(mark.name)
    return out


def _timeout_of(item):
    mark = item.get_closest_marker("timeout")
    if mark is None:
        return None
    value = mark.args[0] if mark.args else mark.kwargs.get("timeout")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _relfile(item):
    try:
        return os.path.relpath(str(item.path), str(item.config.rootpath)).replace(os.sep, "/")
    except Exception:
        return item.nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(session, config, items):
    path = os.environ.get("MTEST_SELECT")
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


def pytest_collection_finish(session):
    if _fd is None or not _collect:
        return
    for item in session.items:
        loc = item.location
        _pending.append(
            json.dumps(
                {
                    "e": "item",
                    "id": item.nodeid,
                    "file": _relfile(item),
                    "line": (loc[1] + 1) if loc and loc[1] is not None else None,
                    "markers": _markers(item),
                    "timeout": _timeout_of(item),
                },
                separators=(",", ":"),
            )
        )
    _flush()


def pytest_collectreport(report):
    if _fd is None or not report.failed:
        return
    _emit(
        {
            "e": "collect_error",
            "id": report.nodeid,
            "text": str(report.longrepr),
        }
    )


_quote = json.encoder.encode_basestring_ascii


def pytest_runtest_logstart(nodeid, location):
    if _fd is None:
        return
    # The hot path: formatted by hand, one write (with the previous test's events).
    line = '{"e":"start","id":%s,"t":%r}\n' % (_quote(nodeid), time.time())
    if _pending:
        _pending.append(line[:-1])
        _flush()
    else:
        os.write(_fd, line.encode("utf-8", "surrogateescape"))


def _crash_message(report):
    longrepr = report.longrepr
    if longrepr is None:
        return None
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (file, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    text = str(longrepr).strip().splitlines()
    return text[-1] if text else None


def pytest_runtest_logreport(report):
    if _fd is None:
        return
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
        event["message"] = _crash_message(report)
        event["longrepr"] = report.longreprtext
    if report.failed or subtest:
        if report.capstdout:
            event["stdout"] = report.capstdout
        if report.capstderr:
            event["stderr"] = report.capstderr
        if report.caplog:
            event["log"] = report.caplog
    # Written with the next `start` or at session end.
    _emit(event, flush=False)


_main_thread_children = "/proc/%d/task/%d/children" % (os.getpid(), os.getpid())


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


_reported = set()


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


def _children():
    """Processes this pytest process started and that are still alive (Linux).
    Threads other than the main one are asked only when there are any."""
    pids = _read(_main_thread_children).split()
    if threading.active_count() > 1:
        try:
            for tid in os.listdir("/proc/self/task"):
                if tid != str(os.getpid()):
                    pids.extend(_read("/proc/self/task/%s/children" % tid).split())
        except OSError:
            pass
    if not pids:
        return None
    out = []
    for pid in pids:
        pid = int(pid)
        stat = _read("/proc/%d/stat" % pid)
        # A zombie (state Z) has finished: nothing to kill. A pid reported once is not
        # blamed on the next test too.
        if not stat or stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z" or pid in _reported:
            continue
        _reported.add(pid)
        # Right after a fork the command line can still be empty: fall back to the name.
        cmd = _read("/proc/%d/cmdline" % pid).replace(b"\0", b" ").strip()
        if not cmd:
            cmd = stat[stat.find(b"(") + 1 : stat.rfind(b")")]
        out.append({"pid": pid, "cmd": cmd.decode("utf-8", "replace")[:200]})
    return out or None


_session = None
_stop = os.environ.get("MTEST_STOP")


def pytest_sessionstart(session):
    global _session
    _session = session


def pytest_runtest_logfinish(nodeid, location):
    if _fd is None:
        return
    if _stop and _session is not None and os.path.exists(_stop):
        # mtest's budget ran out: end the session after this test, cleanly.
        _session.shouldstop = "mtest: the --budget ran out"
    now = time.time()
    leaked = _children() if _has_children() else None
    if leaked:
        _emit({"e": "finish", "id": nodeid, "t": now, "leaked": leaked}, flush=False)
    else:
        _pending.append('{"e":"finish","id":%s,"t":%r}' % (_quote(nodeid), now))


def pytest_internalerror(excrepr, excinfo):
    if _fd is None:
        return
    _emit({"e": "internal_error", "text": str(excrepr)})


def pytest_sessionfinish(session, exitstatus):
    if _fd is None:
        return
    _emit({"e": "session_finish", "exitstatus": int(exitstatus)})
