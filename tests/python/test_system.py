"""system.py: a worker whose supervisor died kills its own process group (how macOS
workers end with mtest; tested here through the pidfd wait, the same thread and kill)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import PLUGIN_DIR

needs_a_wait = pytest.mark.skipif(
    not hasattr(os, "pidfd_open") and not hasattr(__import__("select"), "kqueue"),
    reason="neither pidfd nor kqueue on this system")

WORKER = textwrap.dedent("""
    import subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    from mtest_events import system
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(child.pid, flush=True)
    assert system.watch_supervisor(sys.argv[2]) is not None
    time.sleep(60)
""")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (the worker's, until this test reaps it) is dead too.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def start_worker(supervisor_pid):
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(PLUGIN_DIR), str(supervisor_pid)],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    grandchild = int(worker.stdout.readline())
    return worker, grandchild


def gone_within(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@needs_a_wait
def test_a_worker_kills_its_group_when_its_supervisor_dies():
    supervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker, grandchild = start_worker(supervisor.pid)
    try:
        time.sleep(0.3)
        assert alive(worker.pid) and alive(grandchild), "killed while the supervisor lives"
        supervisor.kill()
        supervisor.wait()
        assert worker.wait(timeout=10) == -signal.SIGKILL
        assert gone_within([grandchild], 10), "what the worker's tests started outlived it"
    finally:
        for p in (supervisor.pid, worker.pid, grandchild):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


@needs_a_wait
def test_a_supervisor_gone_before_the_watch_kills_at_once():
    supervisor = subprocess.Popen([sys.executable, "-c", "pass"])
    supervisor.wait()
    worker, grandchild = start_worker(supervisor.pid)
    try:
        assert worker.wait(timeout=10) == -signal.SIGKILL
        assert gone_within([grandchild], 10)
    finally:
        for p in (worker.pid, grandchild):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
