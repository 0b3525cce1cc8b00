"""pytest-timeout's per-test timer, taken over by the run loop in a worker, and Ctrl-Z
(a pause that puts the timer aside)."""

import os
import threading

from .state import S


def on_pause(signum, frame):
    """Ctrl-Z (mtest sends SIGTSTP to each worker): pytest-timeout's timer is put aside
    while this worker's process group is stopped, and set again with what was left at
    SIGCONT, so a paused test does not time out."""
    import signal

    left = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        os.killpg(os.getpgid(0), signal.SIGSTOP)
    finally:
        if left[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *left)


def catch_pause():
    import signal

    try:
        signal.signal(signal.SIGTSTP, on_pause)
    except (ValueError, OSError, AttributeError):  # not the main thread; no SIGTSTP
        pass


def own_timer(session):
    """pytest-timeout's per-test hooks cost ~4% of a quick test's run (its settings read
    twice, three hook calls, a handler installed and removed). Where its plain setup is in
    use for every test of the session -- the signal method over the whole test, no session
    timeout, no debugger, no other plugin timing tests -- the run loop arms the same timer
    itself and those hooks go: a timeout still ends in pytest-timeout's own handler (its
    stack dump, its message). Decided once per process, for all its chunks: a worker's
    later chunks find the plugin gone and must go on timing (see `settings_of`).
    Returns the timer, or None (pytest-timeout then works as ever)."""
    if S.timer is None:
        S.timer = take_timer(session) or False
    return S.timer or None


def take_timer(session):
    config = session.config
    pm = config.pluginmanager
    plugin = pm.get_plugin("timeout")
    if plugin is None:
        return None
    try:
        if (config._env_timeout_method != "signal" or config._env_timeout_func_only
                or config.stash.get(plugin.SESSION_EXPIRE_KEY, None)
                or config.getoption("usepdb", False) or config.getoption("trace", False)
                or threading.current_thread() is not threading.main_thread()):
            return None
        if any(impl.plugin is not plugin
               for impl in config.hook.pytest_timeout_set_timer.get_hookimpls()):
            return None
        plain = plugin.Settings(config._env_timeout, "signal", False,
                                config._env_timeout_disable_debugger_detection)
        # Every test with a marker of its own, in every chunk this process may run.
        for item in session.items:
            if not has_timeout_marker(item):
                continue
            mine = plugin._get_item_settings(item)
            if mine.method != "signal" or mine.func_only:
                return None
        fire = plugin.timeout_sigalrm
    except Exception:
        return None  # another pytest-timeout than the one this was written against
    pm.unregister(plugin)
    return plugin, plain, fire


def settings_of(timer, item):
    """A test's pytest-timeout settings under the run loop's own timer. A worker's chunk
    can be 15k tests: only those with a marker are looked at again (~5 us a test)."""
    plugin, plain, _ = timer
    return plugin._get_item_settings(item) if has_timeout_marker(item) else plain


def has_timeout_marker(item):
    """Whether a test carries a `timeout` marker: from the collection's note where the
    zygote collected (cheap: a set lookup), else by looking."""
    if S.marks_known and id(item) not in S.timeout_marked:
        return False
    return item.get_closest_marker("timeout") is not None


def on_alarm(signum, frame):
    __tracebackhide__ = True
    item, settings, fire = S.alarm
    fire(item, settings)
