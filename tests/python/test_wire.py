"""What the plugin writes matches the wire's golden file (crates/mtest-pytest/src/wire/), which
mtest's reader is tested against too: every event has the keys and the value types its
golden examples show, and the zygote obeys the golden commands."""

import json
import select
import subprocess
import sys
import time

from conftest import golden, read_events

PROJECT = {
    "test_a": """
        import pytest

        def test_pass():
            pass

        def test_fail():
            print("out")
            assert 1 == 2

        @pytest.mark.timeout(5)
        @pytest.mark.xdist_group("db")
        def test_marked():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False

        def test_skip():
            pytest.skip("not here")
    """,
    "test_broken": "import a_module_that_does_not_exist\n",
    "test_skipped_module": "import pytest\npytest.importorskip('a_module_that_does_not_exist')\n",
}

NUMBER = (int, float)


def _types(value):
    if isinstance(value, bool):
        return (bool,)
    return NUMBER if isinstance(value, NUMBER) else (type(value),)


def _schema():
    """Per event kind: the keys every golden example has, the keys any has, and the value
    types each key takes."""
    schema = {}
    for event in golden("events.jsonl"):
        required, allowed, types = schema.setdefault(event["e"], (set(event), set(), {}))
        required &= set(event)
        allowed |= set(event)
        for key, value in event.items():
            types.setdefault(key, set()).update(_types(value))
    return schema


def check_against_golden(events):
    schema = _schema()
    problems = []
    for event in events:
        kind = event.get("e")
        if kind not in schema:
            problems.append("no golden example of %r: %s" % (kind, event))
            continue
        required, allowed, types = schema[kind]
        missing, extra = required - set(event), set(event) - allowed
        if missing or extra:
            problems.append("%s: missing %s, not in the golden file %s" % (kind, missing, extra))
        for key, value in event.items():
            if key in types and not set(_types(value)) & types[key]:
                problems.append("%s.%s: %r is none of %s" % (kind, key, value, types[key]))
    assert not problems, "\n".join(problems)


def test_a_collection_and_a_process_mode_run_write_golden_events(pytester, plugin_env,
                                                                  monkeypatch):
    pytester.makepyfile(**PROJECT)
    monkeypatch.setenv("MTEST_COLLECT", "1")
    monkeypatch.setenv("MTEST_IMPACT", "1")
    result = pytester.runpytest_subprocess("-p", "mtest_events", "-p", "no:cacheprovider",
                                           "--continue-on-collection-errors")
    events = read_events(plugin_env)
    kinds = {e["e"] for e in events}
    assert {"session_start", "collect_start", "collect_done", "item", "collect_error",
            "collect_skip", "collected", "start", "report", "finish", "tests_done",
            "session_finish", "source", "block", "deps"} <= kinds, (kinds, result.stdout.str())
    check_against_golden(events)
    items = [e for e in events if e["e"] == "item"]
    assert [e["id"] for e in items if "group" in e] == ["test_a.py::test_marked"]


def _wait_for(path, kind, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists():
            found = [e for e in read_events(path) if e["e"] == kind]
            if found:
                return found
        time.sleep(0.05)
    raise AssertionError("no %r event in %s after %d s" % (kind, path, limit))


def _zygote(pytester, monkeypatch, mode, out):
    """A zygote in `mode` ("fork", "collect") in pytester's project, its stdin a pipe."""
    monkeypatch.setenv("MTEST_COLLECT", "1")
    monkeypatch.setenv("MTEST_ZYGOTE", mode)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "mtest_events", "-p", "no:cacheprovider"],
        cwd=pytester.path, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)


def test_the_zygote_obeys_the_golden_commands_and_writes_golden_events(pytester, plugin_env,
                                                                      monkeypatch, tmp_path):
    pytester.makepyfile(test_a=PROJECT["test_a"])
    zygote = _zygote(pytester, monkeypatch, "fork", subprocess.DEVNULL)
    try:
        _wait_for(plugin_env, "ready")
        commands = {c["c"]: c for c in golden("commands.jsonl")}
        fork = dict(commands["fork"])
        worker = tmp_path / "chunk-0003"
        fork.update(items=[0, 1, 2], events=str(worker) + ".events", log=str(worker) + ".log",
                    stacks=str(worker) + ".stacks", stop=str(tmp_path / "stop"),
                    failing=str(tmp_path / "failing"), forgiven=str(tmp_path / "forgiven"),
                    more=False)
        (tmp_path / "failing").write_text("")
        (tmp_path / "forgiven").write_text("")
        zygote.stdin.write((json.dumps(fork) + "\n").encode())
        zygote.stdin.flush()
        _wait_for(plugin_env, "exited")
        zygote.stdin.write((json.dumps(commands["quit"]) + "\n").encode())
        zygote.stdin.flush()
        assert zygote.wait(timeout=60) is not None
    finally:
        if zygote.poll() is None:
            zygote.kill()
    zygote_events = read_events(plugin_env)
    worker_events = read_events(str(worker) + ".events")
    kinds = {e["e"] for e in zygote_events + worker_events}
    assert {"ready", "forked", "exited", "start", "report", "finish"} <= kinds, kinds
    check_against_golden(zygote_events + worker_events)
    started = [e["id"] for e in worker_events if e["e"] == "start"]
    assert started == ["test_a.py::test_pass", "test_a.py::test_fail", "test_a.py::test_marked"]


def test_a_collection_told_to_wait_collects_nothing_before_the_golden_ignore_command(
        pytester, plugin_env, monkeypatch):
    """`mtest --changed` starts the collecting pytest while it checks the project: with
    MTEST_IGNORE_LATER=1 it waits for `ignore` and leaves those files out."""
    pytester.makepyfile(test_b="def test_b():\n    pass\n",
                        test_c="def test_c():\n    pass\n")
    monkeypatch.setenv("MTEST_IGNORE_LATER", "1")
    zygote = _zygote(pytester, monkeypatch, "collect", subprocess.PIPE)
    try:
        _wait_for(plugin_env, "session_start")
        time.sleep(0.5)
        assert not [e for e in read_events(plugin_env) if e["e"] == "collect_start"], \
            "it collected before it was told what to leave out"
        commands = {c["c"]: c for c in golden("commands.jsonl")}
        assert commands["ignore"]["paths"] == ["tests/test_b.py"]
        ignore = dict(commands["ignore"], paths=["test_b.py"])
        zygote.stdin.write((json.dumps(ignore) + "\n").encode())
        zygote.stdin.flush()
        out = zygote.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if zygote.poll() is None:
            zygote.kill()
    events = read_events(plugin_env)
    check_against_golden(events)
    items = [e["id"] for e in events if e["e"] == "item"]
    assert items == ["test_c.py::test_c"], out
