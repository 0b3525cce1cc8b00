"""What differs by system in a worker.

- macOS has no parent-death signal: a worker would outlive a killed mtest. A thread waits
  for mtest's exit (MTEST_SUPERVISOR_PID, kqueue's NOTE_EXIT) and then kills the worker's
  process group: the worker and what its tests started. Where kqueue is missing, a Linux
  pidfd does the same wait (how this is tested on Linux, where mtest itself relies on the
  parent-death signal and sets no MTEST_SUPERVISOR_PID).
- Windows has no SIGINT for a process that leads a console process group of its own: mtest
  stops it with Ctrl-Break, which is made the KeyboardInterrupt SIGINT is elsewhere.
"""

import os
import select
import signal
import threading


def watch_supervisor(pid):
    """Kills this process's group when process `pid` ends (at once if it is gone already).
    Returns the watching thread, or None when this system offers no way to wait."""
    pid = int(pid)
    wait = _kqueue_wait if hasattr(select, "kqueue") else _pidfd_wait
    if wait is _pidfd_wait and not hasattr(os, "pidfd_open"):
        return None
    thread = threading.Thread(target=_watch, args=(wait, pid), name="mtest-supervisor-watch",
                              daemon=True)
    thread.start()
    return thread


def _watch(wait, pid):
    try:
        wait(pid)
    except ProcessLookupError:
        pass  # gone before the watch began
    except OSError:
        return  # cannot watch (no permission): nothing is known of its end
    os.killpg(os.getpgid(0), signal.SIGKILL)


def _kqueue_wait(pid):
    queue = select.kqueue()
    event = select.kevent(pid, filter=select.KQ_FILTER_PROC,
                          flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT,
                          fflags=select.KQ_NOTE_EXIT)
    queue.control([event], 1, None)


def _pidfd_wait(pid):
    fd = os.pidfd_open(pid)
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def break_is_interrupt():
    """On Windows, Ctrl-Break raises KeyboardInterrupt, as Ctrl-C (SIGINT) does."""
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, signal.default_int_handler)
