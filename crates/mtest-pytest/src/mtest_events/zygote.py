"""Fork mode: the zygote serves mtest's commands (a worker per chunk, reaped and reported),
a worker runs its chunks and asks for more; the collected heap is frozen in workers and
given back at the first heap walk."""

import gc
import json
import os
import sys

import pytest

from . import channel, coverage, dependencies, leaks, options, runloop, timeouts
from .state import S


def zygote_exit():
    """The zygote's last exit handler (registered before any other of pytest's session):
    its session has ended and every other handler has run, so it leaves without the
    interpreter's teardown of every collected test -- seconds at 100k tests, for
    nothing."""
    if S.zygote_status is None:
        return  # pytest stopped before a session (a usage error): the normal way out
    try:
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(S.zygote_status)


def serve(session):
    """The zygote: read one command a line on stdin, fork a worker for each chunk, report
    every worker's pid and exit status. EOF on stdin (mtest died): kill them all, leave."""
    import select
    import signal

    threads = leaks.other_threads()
    if threads:
        why = "threads running after collection: %s" % ", ".join(threads)
        channel.emit({"e": "no_fork", "why": why})
        wait_for_quit()
        return
    freeze()
    channel.emit({"e": "ready", "pid": os.getpid()})
    stdin = S.commands
    buf, S.command_buf = S.command_buf, b""
    while True:
        # A worker's pidfd becomes readable when it exits: reaped at once, not on a tick.
        pidfds = [fd for fd in S.pidfds.values() if fd is not None]
        tick = 0.2 if len(pidfds) == len(S.workers) else 0.01
        links = list(S.links.items())
        readable, _, _ = select.select([stdin] + pidfds + [l for _, l in links], [], [], tick)
        for pid, link in links:
            if link in readable:
                relay_want(pid, link)
        reap()
        if stdin not in readable:
            continue
        data = os.read(stdin, 65536)
        if not data:
            for pid in list(S.workers):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            os._exit(0)
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            command = json.loads(line)
            if command.get("c") == "quit":
                while S.workers:
                    reap(block=True)
                return
            if command.get("c") == "fork":
                fork(session, command)
            elif command.get("c") in ("next", "done"):
                # mtest's answer to a worker's `want`, passed on to it.
                link = S.links.get(command.get("pid"))
                if link is not None:
                    try:
                        link.sendall(line + b"\n")
                    except OSError:
                        pass  # it died: its exit says so


# What a frozen heap answers differently: `gc.freeze`, `unfreeze` and `get_freeze_count`
# thaw first (wrapped); `gc.get_objects` and `gc.get_referrers` raise an audit event
# before they walk, on which the heap is thawed (a wrapper of these would be a frame of
# its own, which `get_referrers` would then list as a referrer).
FREEZE_CALLS = ("freeze", "unfreeze", "get_freeze_count")


HEAP_WALKS = ("gc.get_objects", "gc.get_referrers")


gc_unfreeze = gc.unfreeze


def freeze():
    """Everything collection built goes out of the cyclic collector's sight (Python's docs
    advise this before forking): the zygote's session end does not scan it (pytest
    collects garbage there: ~1.4 s at 100k tests), and a worker's collections do not
    write to every object's header, which would copy the whole collected heap into each
    fork (~10% of a 64k-test run).

    A test must still see the heap plain pytest gives it: the first time anything in a
    process walks it (`gc.get_objects`, `gc.get_referrers`: leak checks, hypothesis'
    `register_random`; seen through their audit events, whatever name they are called
    by) or freezes it itself, that process gives the frozen objects back to the
    collector first. The freeze calls are replaced in `gc` and wherever a module took
    one before (`from gc import freeze`)."""
    sys.addaudithook(on_audit)
    originals = {name: getattr(gc, name) for name in FREEZE_CALLS if hasattr(gc, name)}
    wrappers = {id(f): thawing(f) for f in originals.values()}
    for name, original in originals.items():
        setattr(gc, name, wrappers[id(original)])
    for module in list(sys.modules.values()):
        names = getattr(module, "__dict__", None)
        if module is gc or not isinstance(names, dict):
            continue
        for key, value in list(names.items()):
            wrapper = wrappers.get(id(value))
            if wrapper is not None and value is getattr(wrapper, "__wrapped__", None):
                names[key] = wrapper
    gc.freeze.__wrapped__()
    S.frozen = True


def thaw():
    if S.frozen:
        S.frozen = False
        gc_unfreeze()


def on_audit(event, args):
    """An audit hook (it cannot be removed: after the thaw it only looks at a flag)."""
    if S.frozen and event in HEAP_WALKS:
        thaw()


def thawing(walker):
    import functools

    @functools.wraps(walker)
    def thawed(*args, **kwargs):
        thaw()
        return walker(*args, **kwargs)

    return thawed


def relay_want(pid, link):
    """Worker `pid` is about to run the last test of its chunk and asks for more: mtest
    decides."""
    try:
        data = link.recv(4096)
    except OSError:
        data = b""
    if not data:  # the worker is gone
        S.links.pop(pid, None)
        link.close()
        return
    channel.emit({"e": "want", "pid": pid})


def wait_for_quit():
    buf = b""
    while b'"quit"' not in buf:
        data = os.read(S.commands, 65536)
        if not data:
            return
        buf += data


def reap(block=False):
    for pid in list(S.workers):
        try:
            got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            got, status = pid, -1
        if got == pid:
            worker = S.workers.pop(pid)
            fd = S.pidfds.pop(pid, None)
            if fd is not None:
                os.close(fd)
            link = S.links.pop(pid, None)
            if link is not None:
                link.close()
            channel.emit({"e": "exited", "w": worker, "pid": pid, "status": status})
            if block:
                return


def fork(session, command):
    sys.stdout.flush()
    sys.stderr.flush()
    pair = None
    if command.get("more"):
        import socket

        pair = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            if pair is not None:
                pair[0].close()
                S.link = pair[1]
            code = run_worker(session, command)
        except BaseException:
            try:
                import traceback

                traceback.print_exc()
            except BaseException:
                pass
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child did it first
    S.workers[pid] = command["w"]
    if pair is not None:
        pair[1].close()
        S.links[pid] = pair[0]
    try:
        S.pidfds[pid] = os.pidfd_open(pid)
    except (AttributeError, OSError):
        S.pidfds[pid] = None
    channel.emit({"e": "forked", "w": command["w"], "pid": pid})


def run_worker(session, command):
    """A forked worker: its own process group, output, event file and stack file; runs
    its chunk through pytest's run loop and exits without pytest's session end (the
    zygote has that). A worker with a link to the zygote asks for more before the last
    test of each chunk and, given a next chunk, goes on with it in the same process (its
    session fixtures and imports stay, as in an xdist worker); each chunk has its own
    event file, log and stack file."""
    import signal

    if not command.get("gc_freeze", True):
        thaw()
    os.setpgid(0, 0)
    try:  # die with the zygote
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    timeouts.catch_pause()
    os.close(S.commands)  # the zygote's command pipe: not for tests to read
    for fd in S.pidfds.values():  # the zygote's handles on the other workers
        if fd is not None:
            os.close(fd)
    S.pidfds.clear()
    S.workers.clear()
    for link in S.links.values():  # the zygote's ends of the other workers' links
        link.close()
    S.links.clear()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    S.pending = []
    S.known_threads = None
    become_worker(session.config, command["worker"], command["workers"], command["run"])
    config = session.config
    ask = ask_more if S.link is not None else None
    items = session.items
    while True:
        begin_chunk(session, command)
        chunk = [items[i] for i in command["items"]]
        following = None
        try:
            following = runloop.run_items(session, chunk, ask)
            if following is None:
                # After a test ended the loop early, its fixtures are still set up.
                session._setupstate.teardown_exact(None)
        except KeyboardInterrupt:
            channel.write_pending()
            return 130
        except Exception as e:
            following = None
            channel.emit({"e": "notice", "text": "worker %d: fixture teardown at its end failed: %s"
                          % (command["w"], e)})
        if following is None:
            break
        channel.emit({"e": "session_finish", "exitstatus": 0})
        command = following
    coverage.save_coverage(config)
    channel.emit({"e": "session_finish", "exitstatus": 0})
    return 0


def begin_chunk(session, command):
    """Points the worker at a chunk's own event file, log and stack file, and starts it."""
    config = session.config
    channel.write_pending()
    os.close(S.fd)
    S.fd = os.open(command["events"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    S.env["MTEST_EVENTS"] = command["events"]
    dependencies.new_chunk()

    # Output: the chunk's own log, and a capture of the worker's own (the zygote's
    # capture files are shared with every other fork); the capture is restarted so that
    # it puts the new log back between tests.
    log = os.open(command["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.stop_global_capturing()
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        if fault_handler_stderr_fd_key in config.stash:
            os.dup2(log, config.stash[fault_handler_stderr_fd_key])
    except Exception:
        pass
    os.close(log)
    if command.get("unbuffered"):
        # A crash loses captured output: tee it, unbuffered, into the log.
        import io

        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False),
                                      write_through=True, line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False),
                                      write_through=True, line_buffering=True)
        if capman is not None and capman._method != "no":
            capman._method = "tee-sys"
    if capman is not None:
        # With -s too: pytest's capture manager reads its global capture (an empty one
        # under -s) after every test, and fails the test when there is none.
        capman.start_global_capturing()
        capman.suspend_global_capture()
    if command.get("stacks"):
        options.register_stacks(command["stacks"])
    S.stop = command.get("stop") or None
    runloop.set_limit(command.get("max_fail"), command.get("failing"), command.get("forgiven"))

    channel.emit({"e": "session_start", "pid": os.getpid(), "pytest": pytest.__version__,
                  "python": sys.version.split()[0], "rootdir": str(config.rootpath)})
    # Collection errors were counted in the zygote and are recorded apart.
    session.testsfailed = 0
    session.shouldfail = False
    session.shouldstop = False


def become_worker(config, name, count, run):
    """A worker's identity as pytest-xdist gives one, so that per-worker resources
    (databases, ports, directories) named by it do not collide: PYTEST_XDIST_WORKER (which
    also marks the processes its tests start, for mtest to know them) and its siblings,
    and `config.workerinput` (xdist's `worker_id` and `testrun_uid` fixtures,
    pytest-django's database suffix read it). Set as the run loop starts: pytest's
    configuration and session start ran once, as on xdist's controller, and plugins that
    take `workerinput` there for an xdist controller to report to (pytest-cov) see none."""
    os.environ["PYTEST_XDIST_WORKER"] = name
    os.environ["PYTEST_XDIST_WORKER_COUNT"] = str(count)
    os.environ["PYTEST_XDIST_TESTRUNUID"] = run
    if getattr(config, "workerinput", None) is None:
        config.workerinput = {"workerid": name, "workercount": int(count),
                              "testrunuid": run, "mainargv": list(sys.argv)}


def ask_more():
    """Asks mtest (through the zygote) for a next chunk: its command, or None (end)."""
    channel.write_pending()
    buf = b""
    try:
        S.link.sendall(b"want\n")
        while not buf.endswith(b"\n"):
            chunk = S.link.recv(1 << 20)
            if not chunk:
                return None
            buf += chunk
        command = json.loads(buf)
    except (OSError, ValueError):
        return None
    if command.get("c") != "next" or not command.get("items"):
        return None
    return command
