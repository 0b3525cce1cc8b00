"""mtest's event channel inside pytest (written out by mtest and loaded with -p).

One JSON object per line, each written with a single os.write() on an O_APPEND file, so
every event that was written survives a segfault, os._exit() or SIGKILL of this process.
A test's reports and `finish` are written together with the next test's `start` (or at
session end), so a test costs one write: nothing runs between one test's finish and the
next one's start that could crash and lose them.

Environment (set by mtest, read once):
  MTEST_EVENTS   path of the event file (required, else this plugin does nothing)
  MTEST_COLLECT  "1": emit one `item` event per collected test
  MTEST_SELECT   path of a file with one node id per line: run only those
  MTEST_STACKS   path where SIGUSR1 dumps all threads' stacks (faulthandler)
"""

import json
import os
import sys
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
        wanted = set(line.rstrip("\n") for line in f if line.strip())
    keep, drop = [], []
    for item in items:
        (keep if item.nodeid in wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
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


def pytest_runtest_logstart(nodeid, location):
    if _fd is None:
        return
    _emit({"e": "start", "id": nodeid, "t": time.time()})


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
    event = {
        "e": "report",
        "id": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": report.duration,
    }
    if hasattr(report, "wasxfail"):
        event["wasxfail"] = True
    if type(report).__name__ == "SubtestReport":
        event["subtest"] = getattr(report, "_sub_test_description", lambda: "subtest")()
    if report.outcome != "passed":
        event["message"] = _crash_message(report)
        event["longrepr"] = report.longreprtext
    if report.failed or event.get("subtest") is not None:
        if report.capstdout:
            event["stdout"] = report.capstdout
        if report.capstderr:
            event["stderr"] = report.capstderr
        if report.caplog:
            event["log"] = report.caplog
    # Written with the next `start` or this test's `finish`.
    _emit(event, flush=False)


def _children():
    """Processes this pytest process started and that are still alive (Linux)."""
    pids = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open("/proc/self/task/%s/children" % tid) as f:
                pids.extend(int(p) for p in f.read().split())
    except OSError:
        return []
    out = []
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            cmd = "?"
        out.append({"pid": pid, "cmd": cmd[:200]})
    return out


def pytest_runtest_logfinish(nodeid, location):
    if _fd is None:
        return
    event = {"e": "finish", "id": nodeid, "t": time.time()}
    leaked = _children()
    if leaked:
        event["leaked"] = leaked
    _emit(event, flush=False)


def pytest_internalerror(excrepr, excinfo):
    if _fd is None:
        return
    _emit({"e": "internal_error", "text": str(excrepr)})


def pytest_sessionfinish(session, exitstatus):
    if _fd is None:
        return
    _emit({"e": "session_finish", "exitstatus": int(exitstatus)})
