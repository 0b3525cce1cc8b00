"""The event plugin's parts, each seen through the events it writes in a real pytest
process (pytester), or called directly where it is a plain function."""

import os
import sys

from conftest import PLUGIN_DIR, read_events

sys.path.insert(0, str(PLUGIN_DIR))

from mtest_events import channel, collection  # noqa: E402
from mtest_events.state import S  # noqa: E402


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "mtest_events", "-p", "no:cacheprovider", *args)


def of_kind(events, kind):
    return [e for e in events if e["e"] == kind]


def test_a_long_text_keeps_its_head_and_tail_and_is_saved_whole(tmp_path, monkeypatch):
    monkeypatch.setitem(S.env, "MTEST_EVENTS", str(tmp_path / "run.events"))
    monkeypatch.setattr(S, "big_texts", 0)
    text = "head" + "x" * (3 * channel.CAP) + "tail"
    cut = channel.cap(text, "longrepr")
    assert cut.startswith("head") and cut.endswith("tail")
    assert len(cut) < 2 * channel.CAP + 500
    saved = tmp_path / "run.events.1.longrepr.txt"
    assert saved.read_text() == text
    assert str(saved) in cut
    assert channel.cap("short", "longrepr") == "short"


def test_a_lone_surrogate_is_written_not_lost():
    assert channel.encode("bad \udcff name") == b"bad \xed\xb3\xbf name"


def test_an_item_lists_its_own_markers_first_then_its_parents(pytester, plugin_env,
                                                              monkeypatch):
    pytester.makepyfile(test_m="""
        import pytest

        pytestmark = pytest.mark.slow

        @pytest.mark.contract
        class TestC:
            @pytest.mark.smoke
            def test_one(self):
                pass
    """)
    monkeypatch.setenv("MTEST_COLLECT", "1")
    run(pytester)
    items = of_kind(read_events(plugin_env), "item")
    assert [i["markers"] for i in items] == [["smoke", "contract", "slow"]]
    assert callable(collection.markers_of)


def test_options_mtest_cannot_honour_are_refused_in_one_event(pytester, plugin_env,
                                                              monkeypatch):
    pytester.makepyfile(test_a="def test_one():\n    pass\n")
    run(pytester, "--pdb")  # as if from addopts: mtest's own --pdb never reaches pytest
    refused = of_kind(read_events(plugin_env), "refused")
    assert len(refused) == 1 and "--pdb" in refused[0]["text"], refused
    # ...but the test mtest runs again on the terminal has it.
    monkeypatch.setenv("MTEST_FOREGROUND", "1")
    plugin_env.unlink()
    run(pytester, "--pdb")
    assert not of_kind(read_events(plugin_env), "refused")


def test_a_process_a_test_leaves_running_is_named_in_its_finish(pytester, plugin_env):
    pytester.makepyfile(test_a="""
        import subprocess
        import time

        def test_leaves_a_sleeper():
            p = subprocess.Popen(["sleep", "30"])
            # Until it has exec'd, its command line is still this Python's.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                    if f.read().startswith(b"sleep"):
                        break
                time.sleep(0.01)

        def test_clean():
            pass
    """)
    run(pytester)
    finishes = {e["id"]: e for e in of_kind(read_events(plugin_env), "finish")}
    leaked = finishes["test_a.py::test_leaves_a_sleeper"].get("leaked", [])
    assert [p["cmd"] for p in leaked] == ["sleep 30"], finishes
    for p in leaked:
        os.kill(p["pid"], 9)
    assert "leaked" not in finishes["test_a.py::test_clean"]


def test_max_fail_stops_the_worker_after_the_failing_test_that_reaches_it(pytester, plugin_env,
                                                                          monkeypatch, tmp_path):
    pytester.makepyfile(test_a="""
        def test_1():
            assert False

        def test_2():
            assert False

        def test_3():
            assert False
    """)
    failing, forgiven = tmp_path / "failing", tmp_path / "forgiven"
    failing.write_text("")
    forgiven.write_text("test_a.py::test_1\n")  # quarantined: its failure does not count
    monkeypatch.setenv("MTEST_MAXFAIL", "1")
    monkeypatch.setenv("MTEST_FAILING", str(failing))
    monkeypatch.setenv("MTEST_FORGIVEN", str(forgiven))
    monkeypatch.setenv("MTEST_STOP", str(tmp_path / "stop"))
    run(pytester)
    events = read_events(plugin_env)
    assert [e["id"] for e in of_kind(events, "start")] == ["test_a.py::test_1",
                                                           "test_a.py::test_2"]
    assert of_kind(events, "stopped"), events
    assert "test_a.py::test_2" in failing.read_text()


def test_a_timeout_marker_fails_its_test_in_the_run_loop(pytester, plugin_env):
    pytester.makepyfile(test_a="""
        import time
        import pytest

        @pytest.mark.timeout(1)
        def test_sleeps():
            time.sleep(10)

        def test_after():
            pass
    """)
    run(pytester)
    events = read_events(plugin_env)
    calls = {e["id"]: e for e in of_kind(events, "report") if e["when"] == "call"}
    assert calls["test_a.py::test_sleeps"]["outcome"] == "failed"
    assert "Timeout" in calls["test_a.py::test_sleeps"]["longrepr"]
    # A passing test writes no report: its finish says it had none.
    finishes = {e["id"]: e for e in of_kind(events, "finish")}
    assert finishes["test_a.py::test_after"]["n"] == 0
    assert "test_a.py::test_after" not in calls


def test_xdist_and_junitxml_are_taken_over_and_said_so(pytester, plugin_env):
    pytester.makepyfile(test_a="def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    run(pytester, "-n", "2", "--junitxml=out.xml")
    events = read_events(plugin_env)
    notices = [e["text"] for e in of_kind(events, "notice")]
    assert any("-n 2 is ignored" in n for n in notices), notices
    assert any("--junitxml=out.xml is not written" in n for n in notices), notices
    # The tests ran here, in this process, not in xdist's workers; no JUnit file was made.
    pid = of_kind(events, "session_start")[0]["pid"]
    assert len(of_kind(events, "start")) == 2 and len(of_kind(events, "session_start")) == 1
    assert pid > 0
    assert not (pytester.path / "out.xml").exists()
