"""`mtest_impact.early_sums`: what of a block ran before the tests, and which changes leave
that part as it was (a change inside a hole) -- and the fact it stands on, checked on each
Python at hand: every statement that has code raises a LINE event when it starts."""

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import PLUGIN_DIR

sys.path.insert(0, str(PLUGIN_DIR))
import mtest_impact  # noqa: E402

OLD = '''
import os

MODE = "fast"


def setup(kind):
    """Runs at import."""
    table = {}
    if kind == MODE:
        table["a"] = 1
    else:
        table["b"] = os.sep
        table["c"] = 2
    for name in ("x", "y"):
        try:
            table[name] = len(name)
        except TypeError:
            table[name] = -1
    return table
    print("never")


class Registry:
    items = setup(MODE)

    def add(self, name):
        self.items[name] = 0


REGISTRY = Registry()
'''


def ran_at_import(source):
    """The lines that ran when `source` was executed (as collection imports a module)."""
    lines = set()
    code = compile(textwrap.dedent(source), "<ran>", "exec")

    def trace(frame, event, arg):
        if frame.f_code.co_filename == "<ran>" and event == "line":
            lines.add(frame.f_lineno)
        return trace
    sys.settrace(trace)
    try:
        exec(code, {"__name__": "ran"})
    finally:
        sys.settrace(None)
    return lines


LINES = ran_at_import(OLD)


def early(new, old=OLD, block="setup"):
    """(the early sum then, the early sum of `new` at the same holes)."""
    then = mtest_impact.early_sums(textwrap.dedent(old), LINES)
    holes, total = then[block]
    now = mtest_impact.early_sums_now(textwrap.dedent(new), {block: holes})
    return total, now.get(block)


def test_only_the_blocks_with_a_statement_that_did_not_run_get_an_early_sum():
    then = mtest_impact.early_sums(textwrap.dedent(OLD), LINES)
    # `add` never ran: it counts for no test as code that ran before them.
    assert set(then) == {"setup"}, then
    holes, _ = then["setup"]
    # The else branch, and what follows `return` (the if is the 2nd statement: 0 is the
    # docstring).
    assert sorted(holes) == [["body", 2, "orelse", 0], ["body", 3, "body", 0, "handlers", 0,
                                                        "body", 0], ["body", 5]], holes


@pytest.mark.parametrize("old, new", [
    ('table["b"] = os.sep', 'table["b"] = "/"'),            # in the branch that did not run
    ('        table["c"] = 2\n', ''),                      # a statement of it deleted
    ('table["c"] = 2', 'table["c"] = 2\n        table["d"] = 3'),  # one added to it
    ('table[name] = -1', 'table[name] = -2'),              # an except that did not run
    ('print("never")', 'print("still never")'),            # after the return
])
def test_a_change_where_nothing_ran_keeps_the_early_sum(old, new):
    assert OLD.count(old) == 1
    then, now = early(OLD.replace(old, new))
    assert now == then


@pytest.mark.parametrize("old, new", [
    ('table["a"] = 1', 'table["a"] = 2'),                  # in the branch that ran
    ("if kind == MODE:", "if kind != MODE:"),              # the test that ran
    ("    return table\n", "    table.clear()\n    return table\n"),  # before what did not
    ("    return table\n", ""),                            # a statement that ran, deleted
    ('        table["c"] = 2\n', '        x = 2\n'),         # a new local name
    ('        table["c"] = 2\n', '        global table2\n        table2 = 2\n'),
    ('print("never")', 'yield 1'),                          # now a generator
    ('table[name] = -1', 'table[name] = -1\n            os = None'),  # `os` now local
])
def test_a_change_to_what_ran_or_to_the_names_changes_the_early_sum(old, new):
    assert OLD.count(old) == 1
    then, now = early(OLD.replace(old, new))
    assert now != then


def test_a_hole_no_longer_where_it_was_has_no_early_sum():
    then, now = early("def setup(kind):\n    return {}\n")
    assert now is None


def test_a_list_where_something_ran_after_what_did_not_gets_no_hole():
    # Lines as if line 4 had not run but line 5 had: no hole in that list.
    source = "def f():\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n"
    assert mtest_impact.early_sums(source, {1, 2, 3, 5}) == {}
    holes, _ = mtest_impact.early_sums(source, {1, 2, 3})["f"]
    assert holes == [["body", 2]]


MATCH = """def f(x):
    match x:
        case 1 if x > 0:
            y = "one"
        case _:
            y = "other"
    try:
        y += "!"
    except TypeError:
        y = None
    return y
"""


@pytest.mark.parametrize("old, new, same", [
    ('y = "other"', 'y = "else"', True),                   # a case that did not run
    ('y = None', 'y = ""', True),                          # a handler that did not run
    ('y = "one"', 'y = "uno"', False),                     # the case that ran
    ("case 1 if x > 0:", "case 1 if x > 1:", False),       # its guard
    ("case _:", "case 2:", False),                         # the pattern of one that did not
    ("except TypeError:", "except ValueError:", False),    # the handler's type
])
def test_match_cases_and_except_handlers_are_masked_body_by_body(old, new, same):
    lines = {1, 2, 3, 4, 7, 8, 11}  # f(1)
    holes, then = mtest_impact.early_sums(MATCH, lines)["f"]
    assert sorted(holes) == [["body", 0, "cases", 1, "body", 0],
                             ["body", 1, "handlers", 0, "body", 0]], holes
    assert MATCH.count(old) == 1
    now = mtest_impact.early_sums_now(MATCH.replace(old, new), {"f": holes})["f"]
    assert (now == then) is same


def test_statements_without_code_never_start_a_hole():
    source = "def f():\n    '''doc'''\n    global g\n    x: int\n    pass\n"
    assert mtest_impact.early_sums(source, {1}) == {}


# Every kind of statement `_has_code` counts as raising a LINE event, reached: each must
# raise one on a line of its own (PEP 626). Run on the interpreters at hand (3.12+: the
# early sums are computed from sys.monitoring's LINE events).
PEP626 = r'''
import ast, json, sys, textwrap
sys.path.insert(0, sys.argv[1])
import mtest_impact
mon = sys.monitoring
mon.use_tool_id(5, "test")
seen = set()
mon.register_callback(5, mon.events.LINE, lambda code, line: seen.add(line))
CASES = [
    "x = 1", "x = 1\nx += 1", "y: int = 1", "return", "return 1", "...", "1 + 2",
    "print", "x = 0\nx", "try:\n    raise ValueError\nexcept ValueError:\n    x = 1",
    "import os", "from os import path", "x = 1\ndel x", "x = 1\nif x:\n    x = 2",
    "if True:\n    x = 2", "if False:\n    x = 2\nx = 3", "while True:\n    break",
    "for i in range(1):\n    x = i", "import contextlib\nwith contextlib.nullcontext():\n    x = 1",
    "try:\n    x = 1\nexcept Exception:\n    x = 2", "def f():\n    return 1",
    "class C:\n    x = 1", "for i in range(2):\n    break",
    "for i in range(2):\n    if i:\n        continue\n    x = i",
    "x = 1\nmatch x:\n    case 1:\n        x = 2", "f = lambda: 1",
    "x = 1\ndef g():\n    nonlocal x\n    x = 2\ng()", "x = [i for i in range(2)]",
    "@staticmethod\ndef h():\n    return 1", "x = 1\n'not first: no docstring'",
]
missing = []
for body in CASES:
    source = "def target():\n" + textwrap.indent(body, "    ") + "\n"
    namespace = {}
    exec(compile(source, "<case>", "exec"), namespace)
    code = namespace["target"].__code__
    seen.clear()
    mon.set_local_events(5, code, mon.events.LINE)
    namespace["target"]()
    mon.set_local_events(5, code, 0)
    def walk(stmts):
        for i, s in enumerate(stmts):
            if mtest_impact._has_code(s, i == 0) and not mtest_impact._ran(s, seen):
                missing.append((body, type(s).__name__))
            for _, inner in mtest_impact._inner_lists(s):
                walk([t for t in inner if mtest_impact._ran(t, seen)])
    walk(ast.parse(source).body[0].body)
print(json.dumps(missing))
'''


def _pythons():
    import os

    found = [os.environ.get("MTEST_TEST_PYTHON312"), os.environ.get("MTEST_TEST_PYTHON313")]
    if sys.version_info >= (3, 12):
        found.append(sys.executable)
    return [p for p in found if p]


@pytest.mark.parametrize("python", _pythons() or [None])
def test_every_statement_with_code_raises_a_line_event_when_it_starts(python, tmp_path):
    assert python is not None, "no Python 3.12+: set MTEST_TEST_PYTHON312 (./dev does)"
    script = tmp_path / "pep626.py"
    script.write_text(PEP626)
    out = subprocess.run([python, str(script), str(PLUGIN_DIR)], capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == []
