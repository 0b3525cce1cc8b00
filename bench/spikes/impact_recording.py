"""Spike for issue 27 (session 19): what recording each test's project code costs.

Not part of mtest. A pytest plugin that records, for every test, the code objects of the
project (files under the current directory, outside site-packages and venvs) that ran in
it, by the cheapest means found for each Python:

- 3.12+: two `sys.monitoring` tools. Tool 3 sees every code object's first start
  (PY_START, PY_RESUME) and DISABLEs it for good; a project code object is recorded for
  the test running, and from the next test on watched by tool 4 through *local* events.
  Tool 4 records a code object at its first start in a test and switches its local events
  off; they are switched on again when the test ends. So a test costs one callback per
  project code object it runs, and nothing for the rest. (Tried before: DISABLE plus
  `restart_events()` at each test re-instruments every code object pytest runs between
  tests, +40-55% of the wall; calling back at every start of project code, +73%
  instructions on a call-heavy file.)
- 3.11: `sys.settrace` switched on only around the test function (`pytest_pyfunc_call`)
  and each fixture's set-up (`pytest_fixture_setup`). Misses the conftest's own hooks,
  fixture teardown code and other threads; and costly: a Python call per Python call.

Instructions counted by `valgrind --tool=cachegrind` (this machine's wall clock drifts
±20%), packaging 26.4's `tests/test_markers.py` (2,507 tests, call-heavy):
    3.12.1: 17.41 G off, 17.99 G on (+3.3%)
    3.11.7: 15.68 G off, 34.97 G on (+123%; 33.99 G with the test function alone)
3.12 records 63,384 (test, code object) pairs there, as a callback at every start does; 3.11
records 60,904 (the conftest's hooks are outside what it traces). Wall, the whole suite (64,207
tests, ~14 project code objects a test): see the issue's notes.

Run from the sdist's directory:
    SPIKE=on|off PYTHONPATH=bench/spikes python -m pytest -p impact_recording -p no:cacheprovider
"""
import json
import os
import sys

import pytest

ROOT = os.getcwd() + os.sep
MODE = os.environ.get("SPIKE", "on")
_seen = []
_project = {}
_stats = {"tests": 0, "blocks": 0}


def _is_project(filename):
    known = _project.get(filename)
    if known is None:
        known = filename.startswith(ROOT) and "site-packages" not in filename and ".venv" not in filename
        _project[filename] = known
    return known


if MODE != "off" and sys.version_info >= (3, 12):
    mon = sys.monitoring
    EVENTS = mon.events.PY_START | mon.events.PY_RESUME
    FIND, WATCH = 3, 4
    mon.use_tool_id(FIND, "mtest-find")
    mon.use_tool_id(WATCH, "mtest-watch")
    _pending = []

    def _find(code, offset):
        if _is_project(code.co_filename):
            _seen.append(code)  # its first start: the test running ran it
            _pending.append(code)  # watched from the next test on
        return mon.DISABLE

    def _watch(code, offset):
        _seen.append(code)
        mon.set_local_events(WATCH, code, 0)

    for event in (mon.events.PY_START, mon.events.PY_RESUME):
        mon.register_callback(FIND, event, _find)
        mon.register_callback(WATCH, event, _watch)
    mon.set_events(FIND, EVENTS)

    def _watch_again(codes):
        for code in codes:
            mon.set_local_events(WATCH, code, EVENTS)
        codes.clear()

    _arm = _watch_again

elif MODE != "off":
    _arm = None

    def _trace(frame, event, arg):
        code = frame.f_code
        if _is_project(code.co_filename):
            _seen.append(code)
        return None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_pyfunc_call(pyfuncitem):
        sys.settrace(_trace)
        try:
            return (yield)
        finally:
            sys.settrace(None)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_fixture_setup(fixturedef, request):
        sys.settrace(_trace)
        try:
            return (yield)
        finally:
            sys.settrace(None)

else:
    _arm = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if MODE == "off":
        return (yield)
    if _arm is not None:
        _arm(_pending)
    _seen.clear()
    result = yield
    blocks = set(_seen)
    if _arm is not None:
        _arm(list(blocks))
    _stats["tests"] += 1
    _stats["blocks"] += len(blocks)
    return result


def pytest_sessionfinish(session):
    if MODE != "off":
        if sys.version_info >= (3, 12):
            sys.monitoring.set_events(3, 0)
        sys.stderr.write("\nSPIKE %s: %s\n" % (sys.version.split()[0], json.dumps(_stats)))
