"""Plain pytest's outcome of every test, by the rules mtest's records follow, written as
JSON ({node id: outcome}) to $OUTCOMES_OUT when the session ends: a failing setup or
teardown is an error (unless the call failed), `wasxfail` turns a skip into xfailed and a
pass into xpassed, a module that fails to collect is an error and one that skips itself at
import is skipped, under the module's id. Subtest reports roll into their test, as in mtest.

Used by tests/faithful.rs (mtest beside pytest) and bench/realsuites.py."""
import json
import os

_out = {}


def pytest_collectreport(report):
    if report.failed:
        _out[report.nodeid] = "error"
    elif report.skipped:
        _out[report.nodeid] = "skipped"


def pytest_runtest_logreport(report):
    if type(report).__name__ == "SubtestReport":
        return
    wasxfail = hasattr(report, "wasxfail")
    now = _out.get(report.nodeid, "passed")
    if report.when == "call":
        if report.passed:
            now = "xpassed" if wasxfail else "passed"
        elif report.failed:
            now = "failed"
        else:
            now = "xfailed" if wasxfail else "skipped"
    elif report.failed and now != "failed":
        now = "error"
    elif report.skipped:
        now = "xfailed" if wasxfail else "skipped"
    _out[report.nodeid] = now


def pytest_sessionfinish(session):
    path = os.environ.get("OUTCOMES_OUT")
    if path:
        with open(path, "w") as f:
            json.dump(_out, f)
