"""The plugin's state: one object, `S`, made when the plugin is imported. Everything the
plugin remembers between pytest's hook calls is an attribute of it."""

import os

# What mtest tells this process, read once and then taken out of the environment: the tests
# and every process they start see the environment plain pytest would give them (and, in a
# worker, pytest-xdist's PYTEST_XDIST_WORKER and PYTEST_XDIST_WORKER_COUNT).
MTEST_VARS = ("MTEST_EVENTS", "MTEST_COLLECT", "MTEST_ZYGOTE", "MTEST_SELECT", "MTEST_STACKS",
              "MTEST_STOP", "MTEST_INITPATHS", "MTEST_PYTHONPATH", "MTEST_MAXFAIL",
              "MTEST_FAILING", "MTEST_FORGIVEN", "MTEST_FOREGROUND", "MTEST_IMPACT",
              "MTEST_SUPERVISOR_PID", "MTEST_IGNORE_LATER")


class State:
    def __init__(self, environ):
        # mtest's variables (see the package's docstring), taken out of `environ`.
        self.env = {name: environ.pop(name) for name in MTEST_VARS if name in environ}

        # The event channel (channel.py): the event file, and the lines not written yet.
        self.fd = None
        self.pending = []
        # Reports written for the test in flight (`finish` carries the count).
        self.reports = 0
        # Texts too long for an event, saved beside the event file so far.
        self.big_texts = 0
        # Lines for mtest about what it changed in pytest's options (options.py).
        self.notices = []

        # What this process is: a collecting process (items and progress are reported),
        # the zygote ("collect" or "fork"), a test run again on the user's terminal.
        self.collect = False
        self.zygote = self.env.get("MTEST_ZYGOTE")
        self.foreground = self.env.get("MTEST_FOREGROUND") == "1"
        # The zygote's pytest exit status, once its session has finished.
        self.zygote_status = None
        # The zygote's command pipe (its stdin), kept before pytest's capture redirects fd 0
        # (fork mode's, and a collection that waits for its `ignore` command), and what
        # was read from it beyond the last command.
        later = self.env.get("MTEST_IGNORE_LATER") == "1"
        self.commands = os.dup(0) if self.zygote == "fork" or later else None
        self.command_buf = b""
        # The file SIGUSR1 dumps every thread's stacks into (faulthandler).
        self.stacks = None
        self.session = None

        # pytest's own -x / --maxfail, taken over (see options.pytest_cmdline_main).
        self.pytest_maxfail = 0
        # The stop file: its existence means stop after the current test.
        self.stop = self.env.get("MTEST_STOP")
        # --max-fail (mtest's, or pytest's own -x/--maxfail taken over): (how many failing
        # tests end the run, the file where every worker appends the id of each of its
        # failing tests, the ids whose failures do not count: quarantined and flaky). A
        # worker counts them all, so each stops right after the test that reaches the
        # limit, not when mtest reads it (runloop.set_limit).
        self.limit = None
        self.failing_now = False
        self.failing_seen = (-1, False)  # (size of the file when last read, over the limit)

        # Collection's caches (collection.py): a parent's marker names, an item's own and
        # its parents' combined, files relative to the root, a test function's line.
        self.inherited = {}
        self.combined = {}  # (inherited names, own names) -> both, deduplicated
        self.relfiles = {}
        self.lines = {}  # id of a test's function object -> its line
        # The zygote's items that carry a `timeout` marker (by id), known once collection
        # is reported: a worker arms its timer for the others without looking.
        self.timeout_marked = set()
        self.marks_known = False

        # Leaks (leaks.py). pid -> (fixture name, scope, test whose setup started it):
        # processes that a fixture wider than a function started. They are alive between
        # tests on purpose; they are leaks only if they outlive their fixture's teardown.
        self.owned = {}
        # pids already blamed: a process is blamed once.
        self.reported = set()
        self.current = None  # node id of the test in flight
        self.leaks_at_teardown = []
        self.known_threads = None

        # pytest-timeout's timer, once a worker has taken it over (timer.own_timer): (the
        # plugin, the settings of a test without a marker, its handler); False:
        # pytest-timeout keeps it.
        self.timer = None
        self.alarm = None  # (item, its settings, pytest-timeout's handler) while it runs

        # Fork mode (zygote.py).
        self.workers = {}  # pid -> worker number
        self.pidfds = {}  # pid -> its pidfd (None where the platform has none)
        self.links = {}  # pid -> the zygote's end of a worker's link (one that may go on)
        self.link = None  # in a worker: its end of that link
        self.frozen = False  # the collected heap is frozen (gc.freeze) in this worker


S = State(os.environ)
