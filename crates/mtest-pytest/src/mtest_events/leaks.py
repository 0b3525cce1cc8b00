"""Processes and threads a test leaves behind, and the wider fixtures that own theirs."""

import os
import threading

import pytest

from .state import S


def read(path):
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


def has_children():
    """One system call: does this process have any child, alive or not yet reaped?
    WNOWAIT leaves a finished child's status for whoever owns it."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return True
    except ChildProcessError:
        return False
    except (AttributeError, OSError):  # no waitid here: look every time
        return True


def live_children():
    """pid -> command line of the live (not zombie) children of this process (Linux)."""
    me = os.getpid()
    pids = read("/proc/%d/task/%d/children" % (me, me)).split()
    if threading.active_count() > 1:
        try:
            for tid in os.listdir("/proc/self/task"):
                if tid != str(me):
                    pids.extend(read("/proc/self/task/%s/children" % tid).split())
        except OSError:
            pass
    out = {}
    for pid in pids:
        pid = int(pid)
        stat = read("/proc/%d/stat" % pid)
        # A zombie (state Z) has finished: nothing to kill.
        if not stat or stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z":
            continue
        # Right after a fork the command line can still be empty: fall back to the name.
        cmd = read("/proc/%d/cmdline" % pid).replace(b"\0", b" ").strip()
        if not cmd:
            cmd = stat[stat.find(b"(") + 1 : stat.rfind(b")")]
        out[pid] = cmd.decode("utf-8", "replace")[:200]
    return out


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if S.fd is None or fixturedef.scope == "function":
        yield
        return
    before = live_children() if has_children() else {}
    yield
    if has_children():
        for pid in live_children():
            if pid not in before:
                S.owned[pid] = (fixturedef.argname, fixturedef.scope, S.current)


def pytest_fixture_post_finalizer(fixturedef, request):
    if S.fd is None or fixturedef.scope == "function" or not S.owned:
        return
    alive = live_children() if has_children() else {}
    for pid, (name, scope, test) in list(S.owned.items()):
        if name != fixturedef.argname or scope != fixturedef.scope:
            continue
        del S.owned[pid]
        if pid in alive and pid not in S.reported:
            S.reported.add(pid)
            S.leaks_at_teardown.append(
                {"pid": pid, "cmd": alive[pid],
                 "owner": "%s-scoped fixture `%s` (set up by %s)" % (scope, name, test)}
            )


def leaked():
    """Processes the test in flight left running: children that no live wider-scoped
    fixture owns, plus what such a fixture left behind at its teardown."""
    out = S.leaks_at_teardown
    S.leaks_at_teardown = []
    if has_children():
        for pid, cmd in live_children().items():
            if pid in S.owned or pid in S.reported:
                continue
            S.reported.add(pid)
            out.append({"pid": pid, "cmd": cmd})
    return out or None


def other_threads():
    """Names of live non-daemon threads other than the main one."""
    return [t.name for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon]


def new_threads():
    """Non-daemon threads that appeared since the last look (cheap when there are none)."""
    if threading.active_count() <= 1 and not S.known_threads:
        return None
    live = {t.ident: t.name for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon}
    known = S.known_threads or {}
    new = [name for ident, name in live.items() if ident not in known]
    S.known_threads = live
    return new or None
