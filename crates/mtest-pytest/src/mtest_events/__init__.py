"""mtest's event channel and run loop inside pytest (written out by mtest, loaded with
`-p mtest_events`).

One JSON object per line, each written with a single os.write() on an O_APPEND file, so
every event that was written survives a segfault, os._exit() or SIGKILL of this process.
A test's reports and `finish` are written together with the next test's `start` (or at
session end), so a test costs one write: nothing runs between one test's finish and the
next one's start that could crash and lose them.

Text is written as UTF-8 with lone surrogates passed through (`surrogatepass`): whatever a
test puts into its report, the line is written, and mtest decodes it lossily. `finish`
says how many reports the test produced, so a report mtest could not read is an error,
never a pass.

The same run loop serves both of mtest's executors:
  - process mode: this pytest process runs the ids in MTEST_SELECT, then ends;
  - fork mode (MTEST_ZYGOTE=fork): this process (the zygote) collects once, reports the
    items, and then only forks: a worker per chunk that mtest sends on stdin, which then
    asks for more before its last test and may go on with the next chunk (see zygote.py).

Environment (set by mtest, read once at import and then taken out of os.environ):
  MTEST_EVENTS   path of the event file (required, else this plugin does nothing)
  MTEST_COLLECT  "1": emit one `item` event per collected test, and collection progress
  MTEST_ZYGOTE   "collect": collect and end; "fork": collect, then serve fork commands
  MTEST_IGNORE_LATER  "1": before collecting, wait for an `ignore` command on stdin (the
                 files to leave out, known once `mtest --changed` has checked the project)
  MTEST_SELECT   path of a file with one node id per line: run only those, in that order
  MTEST_STACKS   path where SIGUSR1 dumps all threads' stacks (faulthandler)
  MTEST_STOP     path of a file whose existence means: stop after the current test
  MTEST_INITPATHS  process mode: path of a file with the run's collection's initial paths,
                 one a line (see collection.as_collected)
  MTEST_PYTHONPATH  PYTHONPATH as it was before mtest put this plugin's dir on it
  MTEST_MAXFAIL, MTEST_FAILING, MTEST_FORGIVEN  process mode: --max-fail (see runloop.set_limit)
  MTEST_IMPACT   "1": record what each test depends on (see mtest_impact, dependencies)
  MTEST_FOREGROUND  "1": one test run again on the user's terminal under pytest's
                 debugger (`mtest -- --pdb` / `--trace`): --pdb and --trace are allowed,
                 Ctrl-Z is the terminal's
  MTEST_SUPERVISOR_PID  macOS: mtest's pid, whose end kills this process's group (see
                 system.py)

The modules: state (the one object `S` that holds what the plugin remembers), channel (the
event file), options (what mtest changes or refuses in pytest's options), collection
(items and collection progress), reporting (a test's start, reports, finish; the session),
leaks (processes and threads a test leaves behind), timeouts (pytest-timeout's timer and
Ctrl-Z), runloop (the run loop, the stop file and --max-fail), zygote (the fork server and
its workers, gc.freeze), coverage (pytest-cov in a worker), system (what differs on macOS
and Windows). The wire they write is shown by
example in ../wire/ (events.jsonl, commands.jsonl).
"""

import faulthandler
import os
import sys

from .state import S


def _give_back_the_path():
    """mtest put this plugin's directory first on PYTHONPATH, and said what it was before
    (MTEST_PYTHONPATH, empty for none): both go back as they were."""
    was = S.env.pop("MTEST_PYTHONPATH", None)
    if was is None:
        return
    if was:
        os.environ["PYTHONPATH"] = was
    else:
        os.environ.pop("PYTHONPATH", None)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:] = [p for p in sys.path if not p or os.path.abspath(p) != here]


_give_back_the_path()
if S.env.get("MTEST_EVENTS") and not faulthandler.is_enabled():
    # A crash's stack, also before pytest's own faulthandler plugin (conftests, plugins,
    # collection): into this process's stderr, which is mtest's log of it.
    faulthandler.enable(all_threads=True)

from . import runloop, zygote  # noqa: E402  (after the path and faulthandler)

if S.zygote:
    import atexit

    atexit.register(zygote.zygote_exit)
runloop.set_limit(S.env.get("MTEST_MAXFAIL"), S.env.get("MTEST_FAILING"),
                  S.env.get("MTEST_FORGIVEN"))

# A plugin of its own: its hooks share names with this module's.
pytest_plugins = ("mtest_events.dependencies",)

# pytest's hooks: pytest finds them on this module.
from .collection import (  # noqa: E402,F401
    pytest_collection,
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_collectreport,
    pytest_collectstart,
)
from .leaks import pytest_fixture_post_finalizer, pytest_fixture_setup  # noqa: E402,F401
from .options import pytest_cmdline_main, pytest_configure  # noqa: E402,F401
from .reporting import (  # noqa: E402,F401
    pytest_internalerror,
    pytest_runtest_logfinish,
    pytest_runtest_logreport,
    pytest_runtest_logstart,
    pytest_sessionfinish,
    pytest_sessionstart,
)
from .runloop import pytest_runtestloop  # noqa: E402,F401

__all__ = [
    "pytest_cmdline_main",
    "pytest_collection",
    "pytest_collection_finish",
    "pytest_collection_modifyitems",
    "pytest_collectreport",
    "pytest_collectstart",
    "pytest_configure",
    "pytest_fixture_post_finalizer",
    "pytest_fixture_setup",
    "pytest_internalerror",
    "pytest_runtest_logfinish",
    "pytest_runtest_logreport",
    "pytest_runtest_logstart",
    "pytest_runtestloop",
    "pytest_sessionfinish",
    "pytest_sessionstart",
]
