"""Spike for issue 27 (session 19): what recording each test's project code costs.

Not part of mtest. A pytest plugin that records, for every test, the code objects of the
project (files under the current directory, outside site-packages and venvs) that ran
in it, by the cheapest means each Python has:

- 3.12+: `sys.monitoring` (tool id 4), PY_START and PY_RESUME for every code object; a
  code object outside the project returns DISABLE once and is never seen again (no
  `restart_events`, which re-instruments every code object and cost +40-55% here); the
  project's code calls back each time it starts.
- 3.11: `sys.settrace` switched on only around the test function (`pytest_pyfunc_call`)
  and each fixture's set-up (`pytest_fixture_setup`): switched on for the whole of each
  test it cost 3.7x; around setup/call/teardown, +75-85%. Misses: the conftest's own
  hooks, fixture teardown code, other threads.

Run from packaging 26.4's sdist (64,207 tests):
    SPIKE=on|off|dump PYTHONPATH=bench/spikes python -m pytest -p impact_recording -p no:cacheprovider
Measured there (user CPU of `tests/test_version.py tests/test_specifiers.py`, off/on taken
in turn, three pairs): 3.12.1 +11%, +6%, -2% (median +6%); 3.11.7 +19%, +51%, +27% (median
+27%). About 14 project code objects a test (906,169 for 64,207 tests).
"""
import os, sys, json
import pytest

ROOT = os.getcwd() + os.sep
MODE = os.environ.get("SPIKE", "on")
_seen = set()
_project = {}
_stats = {"tests": 0, "blocks": 0}
_out = []

def _is_project(fn):
    r = _project.get(fn)
    if r is None:
        r = fn.startswith(ROOT) and "site-packages" not in fn and ".venv" not in fn
        _project[fn] = r
    return r

PY312 = sys.version_info >= (3, 12)
if MODE != "off" and PY312:
    mon = sys.monitoring
    TOOL = 4
    mon.use_tool_id(TOOL, "mtest-impact")
    DISABLE = mon.DISABLE
    add = _seen.add
    project = _project

    def _start(code, offset):
        p = project.get(code.co_filename)
        if p is None:
            p = _is_project(code.co_filename)
        if p:
            add(code)
            return None
        return DISABLE

    mon.register_callback(TOOL, mon.events.PY_START, _start)
    mon.register_callback(TOOL, mon.events.PY_RESUME, _start)
    mon.set_events(TOOL, mon.events.PY_START | mon.events.PY_RESUME)
elif MODE != "off":
    add = _seen.add
    project = _project

    def _trace(frame, event, arg):
        code = frame.f_code
        p = project.get(code.co_filename)
        if p is None:
            p = _is_project(code.co_filename)
        if p:
            add(code)
        return None

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_pyfunc_call(pyfuncitem):
        sys.settrace(_trace)
        yield
        sys.settrace(None)

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_fixture_setup(fixturedef, request):
        sys.settrace(_trace)
        yield
        sys.settrace(None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if MODE == "off":
        yield
        return
    _seen.clear()
    yield
    blocks = list(_seen)
    _stats["tests"] += 1
    _stats["blocks"] += len(blocks)
    if MODE == "dump":
        _out.append((item.nodeid, sorted(c.co_qualname if hasattr(c, "co_qualname") else c.co_name for c in blocks)))


def pytest_sessionfinish(session):
    if MODE != "off" and PY312:
        sys.monitoring.set_events(4, 0)
    if MODE != "off":
        sys.stderr.write("\nSPIKE %s: %s\n" % (sys.version.split()[0], json.dumps(_stats)))
    if MODE == "dump":
        with open("impact_recording.json", "w") as f:
            json.dump(_out, f)
