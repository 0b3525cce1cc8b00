"""A test's `start`, its phase `report`s and its `finish`; the session's start and end."""

import os
import threading
import time

from . import channel, dependencies, leaks, options, runloop
from .state import S


def pytest_runtest_logstart(nodeid, location):
    if S.fd is None:
        return
    S.reports = 0
    S.failing_now = False
    S.current = nodeid
    # The hot path: formatted by hand, one write (with the previous test's events).
    line = '{"e":"start","id":%s,"t":%r}\n' % (channel.quote(nodeid), time.time())
    if S.pending:
        S.pending.append(line[:-1])
        channel.write_pending()
    else:
        channel.write_all(channel.encode(line))


def crash_message(report):
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
    if S.fd is None:
        return
    if report.failed:
        S.failing_now = True
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
        event["message"] = channel.cap(crash_message(report), "message")
        event["longrepr"] = channel.cap(report.longreprtext, "longrepr")
    if report.failed or subtest:
        if report.capstdout:
            event["stdout"] = channel.cap(report.capstdout, "stdout")
        if report.capstderr:
            event["stderr"] = channel.cap(report.capstderr, "stderr")
        if report.caplog:
            event["log"] = channel.cap(report.caplog, "log")
    S.reports += 1
    # Written with the next `start` or at session end.
    channel.emit(event, flush=False)


def pytest_sessionstart(session):
    S.session = session
    if S.fd is not None and not S.zygote:
        options.chunk_keeps_out_of_the_cache(session.config)


def pytest_runtest_logfinish(nodeid, location):
    if S.fd is None:
        return
    over = S.limit is not None and runloop.over_the_limit(nodeid)
    if S.stop and S.session is not None and (over or os.path.exists(S.stop)):
        # mtest says stop (the --budget ran out, --max-fail): end the session after
        # this test, cleanly.
        S.session.shouldstop = runloop.STOP_ASKED
    S.current = None
    now = time.time()
    leaked = leaks.leaked()
    threads = leaks.new_threads() if threading.active_count() > 1 or S.known_threads else None
    deps = dependencies.finish()
    if leaked or threads:
        event = {"e": "finish", "id": nodeid, "t": now, "n": S.reports}
        if leaked:
            event["leaked"] = leaked
        if threads:
            event["threads"] = threads
        if deps is not None:
            event["deps"] = deps
        channel.emit(event, flush=False)
    else:
        S.pending.append('{"e":"finish","id":%s,"t":%r,"n":%d%s}'
                         % (channel.quote(nodeid), now, S.reports,
                            "" if deps is None else ',"deps":[%s]' % ",".join(map(str, deps))))


def pytest_internalerror(excrepr, excinfo):
    if S.fd is None:
        return
    channel.emit({"e": "internal_error", "text": channel.cap(str(excrepr), "internal")})


def pytest_sessionfinish(session, exitstatus):
    if S.fd is None:
        return
    if S.zygote:
        S.zygote_status = int(exitstatus)
    channel.emit({"e": "session_finish", "exitstatus": int(exitstatus)})


def aborted(item, kind, message, text):
    """A test ended pytest's session (KeyboardInterrupt, pytest.exit(), a hook raising):
    it gets its own outcome; mtest runs the tests after it in a new worker."""
    channel.emit({"e": "aborted", "id": item.nodeid, "kind": kind, "message": message,
                  "text": channel.cap(text, "aborted"), "t": time.time(), "n": S.reports})
