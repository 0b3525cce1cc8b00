"""`mtest_impact`: blocks and their checksums, and what a real pytest run records for each
test (its own code, its fixtures', what ran before it, the files it opened), on this
interpreter and, where one is found, on Python 3.12+ (sys.monitoring)."""

import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import PLUGIN_DIR, read_events

sys.path.insert(0, str(PLUGIN_DIR))
import mtest_impact  # noqa: E402


def sums(source):
    return mtest_impact.block_sums(textwrap.dedent(source))


BASE = """
    '''doc'''
    import os
    LIMIT = 10

    def helper(x, y=1):
        def inner(z):
            return z + 1
        f = lambda v: v * 2
        return inner(x) + f(y)

    class Box:
        size = LIMIT

        @property
        def grow(self):
            return self.size + 1
"""


def test_every_block_is_named_as_python_names_its_code():
    # (`LIMIT = 10` binds a literal: the top level without it, and it, have sums too.)
    assert set(sums(BASE)) == {"<module>", "helper", "helper.<locals>.inner", "Box",
                               "Box.grow", "<module>;", "<module>;LIMIT"}


def test_positions_comments_and_blank_lines_change_no_block():
    moved = "\n\n# a comment\n" + textwrap.dedent(BASE).replace("return z + 1",
                                                                 "return z + 1  # note")
    assert mtest_impact.block_sums(moved) == sums(BASE)


@pytest.mark.parametrize("old, new, changed", [
    ("return z + 1", "return z + 2", {"helper.<locals>.inner"}),
    ("v * 2", "v * 3", {"helper"}),  # a lambda is its enclosing block's
    ("return self.size + 1", "return self.size - 1", {"Box.grow"}),
    ("size = LIMIT", "size = LIMIT + 1", {"Box"}),
    # A literal bound to a name: the top level and the name's literal; not the rest.
    ("LIMIT = 10", "LIMIT = 11", {"<module>", "<module>;LIMIT"}),
    ("LIMIT = 10", "LIMIT = -(10)", {"<module>", "<module>;LIMIT"}),
    ("LIMIT = 10", "LIMIT = len('x')", {"<module>", "<module>;", "<module>;LIMIT"}),
    ("'''doc'''", "'''other doc'''", {"<module>", "<module>;"}),
    # A header runs in the enclosing block and shapes the block itself.
    ("def helper(x, y=1):", "def helper(x, y=2):", {"<module>", "<module>;", "helper"}),
    ("@property", "@staticmethod", {"Box", "Box.grow"}),
    ("def inner(z):", "def inner(w):", {"helper", "helper.<locals>.inner"}),
])
def test_a_change_changes_the_blocks_that_hold_it_and_no_other(old, new, changed):
    before, after = sums(BASE), sums(BASE.replace(old, new))
    assert {name for name in before if before[name] != after.get(name)} == changed


@pytest.mark.parametrize("statement, names", [
    ("X = 1", ["X"]),
    ("X = Y = -1.5", ["X", "Y"]),
    ("X: int = 3", ["X"]),
    ("X = (1, 'a', None, b'x', ...)", ["X"]),
    ("X = {'a': [1, {2, (3, 4)}], (1, 2): frozenset}", None),  # a name
    ("X = {'a': [1, {2, (3, 4)}], (1, 2): ()}", ["X"]),
    ("X = {[1]: 2}", None),  # raises: a list is no key
    ("X = {[1]}", None),
    ("X = -'a'", None),  # raises
    ("X = 1 / 0", None),  # raises
    ("X = f'{1}'", None),
    ("X, Y = 1, 2", None),  # unpacking can raise
    ("X += 1", None),
    ("X: int", None),
    ("__all__ = ['f']", None),  # read by `import *` and tools
    ("__version__ = '1.0'", ["__version__"]),
    ("pytest_plugins = ['x']", None),  # read by pytest
    ("collect_ignore = ['setup.py']", None),
])
def test_literal_names_are_bindings_of_what_cannot_raise_or_read(statement, names):
    assert mtest_impact.literal_names(ast.parse(statement).body[0]) == names


def test_the_same_name_twice_is_one_block_of_both():
    source = "if X:\n    def f():\n        return 1\nelse:\n    def f():\n        return 2\n"
    changed = source.replace("return 2", "return 3")
    assert set(sums(source)) == {"<module>", "f"}
    assert sums(source)["f"] != sums(changed)["f"]


@pytest.mark.parametrize("runtime, block", [
    ("f", "f"),
    ("C.m", "C.m"),
    ("f.<locals>.g", "f.<locals>.g"),
    ("f.<locals>.<lambda>", "f"),
    ("f.<locals>.<listcomp>", "f"),
    ("C.<lambda>", "C"),
    ("<lambda>", "<module>"),
    ("<genexpr>", "<module>"),
    ("<module>", "<module>"),
    ("f.<locals>.g.<locals>.<genexpr>", "f.<locals>.g"),
])
def test_a_code_objects_name_maps_to_the_block_that_holds_its_source(runtime, block):
    assert mtest_impact.static_name(runtime) == block


def test_the_check_says_what_each_file_is_now(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    return 1\n")
    (tmp_path / "data.txt").write_text("x")
    a_sum = mtest_impact.file_sum(b"def f():\n    return 1\n")
    request = {"a.py": [a_sum], "data.txt": ["old"], "gone.py": ["s"]}
    answer = _helper(tmp_path, "check", request)
    assert answer["a.py"] == {"sum": a_sum}, "as recorded: no blocks needed"
    assert answer["data.txt"]["sum"] == mtest_impact.file_sum(b"x")
    assert "blocks" not in answer["data.txt"]
    assert answer["gone.py"] == {"sum": ""}
    (tmp_path / "a.py").write_text("def f():\n    return 2\n")
    answer = _helper(tmp_path, "check", {"a.py": [a_sum]})
    assert set(answer["a.py"]["blocks"]) == {"<module>", "f"}
    # One version recorded is the file as it is, another is not: its blocks are needed.
    now = mtest_impact.file_sum((tmp_path / "a.py").read_bytes())
    answer = _helper(tmp_path, "check", {"a.py": [a_sum, now]})
    assert answer["a.py"]["sum"] == now and "blocks" in answer["a.py"]
    # `sums`: only for a file still as recorded.
    assert _helper(tmp_path, "sums", {"a.py": a_sum}) == {}
    now = mtest_impact.file_sum((tmp_path / "a.py").read_bytes())
    assert set(_helper(tmp_path, "sums", {"a.py": now})["a.py"]) == {"<module>", "f"}


def test_the_helper_computes_early_sums_and_the_check_compares_them_later(tmp_path):
    source = "def f(k):\n    if k:\n        return 1\n    return 2\n"
    (tmp_path / "a.py").write_text(source)
    checksum = mtest_impact.file_sum(source.encode())
    ran = {"a.py": [[checksum, [1, 2, 3]]]}  # `return 2` did not run
    answer = _helper(tmp_path, "sums", {}, whole=True, early=ran, env=False)
    assert answer["env"] == "", "the asker knows the environment"
    holes, then = answer["early"]["a.py"][checksum]["f"]
    (tmp_path / "a.py").write_text(source.replace("return 2", "return 3"))
    asked = {"a.py": {checksum: {"f": holes}}}
    now = _helper(tmp_path, "check", {"a.py": [checksum]}, early=asked)
    assert now["a.py"]["early"] == {checksum: {"f": then}}, "a change in the hole"
    (tmp_path / "a.py").write_text(source.replace("return 1", "return 3"))
    now = _helper(tmp_path, "check", {"a.py": [checksum]}, early=asked)
    assert now["a.py"]["early"][checksum]["f"] != then, "a change to what ran"
    assert _helper(tmp_path, "sums", {}, whole=True, early=ran)["early"] == {}, \
        "the version is no longer on disk: none"


def _helper(root, command, files, config="", whole=False, path=(), early=None, env=True):
    request = {"config": config, "files": files, "env": env}
    if early is not None:
        request["early"] = early
    done = subprocess.run([sys.executable, "-m", "mtest_impact", command], cwd=root,
                          input=json.dumps(request),
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              [str(PLUGIN_DIR), *map(str, path)])), check=True)
    answer = json.loads(done.stdout)
    return answer if whole else answer["files"]


def test_the_environment_is_the_interpreter_its_distributions_and_the_configuration(
        tmp_path):
    env = _helper(tmp_path, "check", {}, whole=True)["env"]
    assert env == _helper(tmp_path, "check", {}, whole=True)["env"]
    assert env != _helper(tmp_path, "check", {}, config="-p xdist", whole=True)["env"]
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    assert env != _helper(tmp_path, "check", {}, whole=True)["env"]


def test_installing_upgrading_or_removing_a_distribution_changes_the_environment(tmp_path):
    """The distributions are known by their metadata directories on sys.path."""
    project, site = tmp_path / "project", tmp_path / "site"
    project.mkdir()
    site.mkdir()

    def env():
        return _helper(project, "check", {}, whole=True, path=[site])["env"]

    before = env()
    (site / "fake-1.0.dist-info").mkdir()
    installed = env()
    (site / "fake-1.0.dist-info").rename(site / "fake-1.1.dist-info")
    upgraded = env()
    (site / "fake-1.1.dist-info").rmdir()
    assert len({before, installed, upgraded}) == 3
    assert env() == before


# --- recording in a real pytest run ----------------------------------------------------

PROJECT = {
    "pkg/__init__.py": "",
    "pkg/empty.py": "",  # the same code as __init__.py: known apart all the same
    "pkg/calc.py": """
        LIMIT = 10

        def add(a, b):
            return a + b

        def mul(a, b):
            f = lambda x: x * b
            return f(a)

        def unused():
            return 0

        class Box:
            size = LIMIT

            def grow(self):
                return self.size + 1
    """,
    "tests/conftest.py": """
        import pytest
        from pkg import calc

        @pytest.fixture(scope="session")
        def big():
            return calc.add(100, 1)
    """,
    "tests/test_calc.py": """
        import os
        import pkg.empty
        from pkg.calc import add, mul, Box

        def test_add():
            assert add(1, 2) == 3

        def test_mul():
            assert mul(2, 3) == 6

        def test_box():
            assert Box().grow() == 11

        def test_big(big):
            assert big == 101

        def test_big_again(big):
            assert big == 101

        def test_data():
            with open(os.path.join(os.path.dirname(__file__), "data.txt")) as f:
                assert f.read() == "x"
    """,
    "tests/data.txt": "x",
}


def _python312():
    """Python 3.12 (`./dev` makes a venv of it): None under CI when it is missing (the test
    fails), else skipped."""
    other = os.environ.get("MTEST_TEST_PYTHON312")
    if other or os.environ.get("CI") == "true":
        return [pytest.param(other, id="python3.12")]
    return [pytest.param(None, id="python3.12", marks=pytest.mark.skip("no Python 3.12"))]


def _interpreters():
    """This Python, and 3.12."""
    return [pytest.param(sys.executable, id="this-python")] + _python312()


def _record(root, python, events, project=PROJECT, args=()):
    for path, text in project.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    env = dict(os.environ, PYTHONPATH=str(PLUGIN_DIR), MTEST_EVENTS=str(events),
               MTEST_IMPACT="1")
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run([python, "-m", "mtest_boot", "-p", "mtest_events",
                           "-p", "no:cacheprovider", "-q", *args], cwd=root, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return _deps_by_test(read_events(events))


SHARED = {
    "conftest.py": """
        import pytest

        @pytest.fixture(scope="session")
        def registry():
            return {}
    """,
    "tests/conftest.py": """
        import pytest

        @pytest.fixture(autouse=True)
        def fill(registry):
            registry["x"] = 1
    """,
    "tests/test_a.py": "def test_a():\n    pass\n",
    "other/test_c.py": """
        def test_c(request):
            assert request.getfixturevalue("registry")["x"] == 1
    """,
}


@pytest.mark.parametrize("python", _interpreters())
def test_a_fixture_that_fills_a_wider_ones_value_counts_for_every_test_using_it(python,
                                                                                 tmp_path):
    """test_c passes only because an earlier test's autouse fixture filled the session
    fixture's value; a change to that fixture must reach it. With --doctest-modules, the
    conftests are collected as doctest modules and still count for every test."""
    assert python is not None, "no Python 3.12: set MTEST_TEST_PYTHON312 (./dev does)"
    deps = _record(tmp_path, python, tmp_path / "events", SHARED,
                   ("--doctest-modules", "tests/test_a.py", "other/test_c.py"))
    own, early = deps["test_c"]
    assert "tests/conftest.py:fill" in own, own
    assert {"conftest.py:<module>", "tests/conftest.py:<module>"} <= early, early


LAZY = {
    "pkg/__init__.py": "",
    "pkg/lazy.py": """
        def build():
            return {"n": 1}

        TABLE = build()
    """,
    "pkg/ops.py": """
        OPS = {"same": lambda x: x}
    """,
    "tests/test_lazy.py": """
        from pkg.ops import OPS

        def test_first():
            assert OPS["same"](1) == 1  # a lambda of a top level: no import

        def test_import():
            from pkg import lazy

        def test_after():
            import sys
            assert sys.modules["pkg.lazy"].TABLE == {"n": 1}
    """,
}


@pytest.mark.parametrize("python", _interpreters())
def test_what_a_test_that_imports_a_module_ran_counts_for_every_later_test(python, tmp_path):
    """test_after runs nothing of pkg.lazy: test_import imported it (its top level and
    `build`, which made TABLE, ran then). What ran in that import is a set of test_after's
    own -- not the rest of test_import; test_first, before the import, has none."""
    assert python is not None, "no Python 3.12: set MTEST_TEST_PYTHON312 (./dev does)"
    deps = _record(tmp_path, python, tmp_path / "events", LAZY)
    imported = {"pkg/lazy.py:<module>", "pkg/lazy.py:build"}
    assert imported <= deps["test_import"][0], deps["test_import"]
    assert len(deps["test_import"]) == 2, deps["test_import"]  # its own, and the early
    assert not any(imported & s for s in deps["test_first"]), deps["test_first"]
    assert "pkg/ops.py:<module>" in deps["test_first"][0], deps["test_first"]
    late = [s for s in deps["test_after"][1:] if imported <= s]
    assert late == [imported], deps["test_after"]
    assert not imported & deps["test_after"][0], deps["test_after"]


DOCTESTS = {
    "pkg/__init__.py": "",
    "pkg/doc.py": '''
        """The module.

        >>> 1 + 1
        2
        """

        def f():
            """
            >>> 2 + 2
            4
            """

        class A:
            def m(self):
                """
                >>> 3 + 3
                6
                """

        __test__ = {"extra": ">>> 4 + 4\\n8\\n"}
    ''',
    "docs/guide.rst": "A guide.\n\n>>> 5 + 5\n10\n",
}


MADE = {
    "pkg/__init__.py": "",
    "pkg/made.py": """
        import types

        def _impl(x):
            return x + 1

        def _other(x):
            return x * 2

        def make():
            return types.FunctionType(_impl.__code__.replace(co_name="made"), globals())

        def patch(f):
            f.__code__ = _other.__code__.replace(co_name="patched")
            return f
    """,
    "pkg/script.py": """
        def run(x):
            return x - 1
    """,
    "tests/test_made.py": """
        import runpy
        from pkg.made import make, patch

        def test_function_made():
            assert make()(1) == 2

        def test_code_set():
            @patch
            def f(x):
                return 0
            assert f(2) == 4

        def test_run_path():
            assert runpy.run_path("pkg/script.py")["run"](1) == 0
    """,
}


@pytest.mark.parametrize("python", _interpreters())
def test_code_made_at_run_time_from_the_projects_is_recorded(python, tmp_path):
    """A function made of a code object of the project's (`types.FunctionType`, a
    `__code__` set), a file executed by runpy: what they run is recorded. (On 3.11 runpy is
    frozen: its read of the file is no import, and the file is a dependency.)"""
    assert python is not None, "no Python 3.12: set MTEST_TEST_PYTHON312 (./dev does)"
    deps = _record(tmp_path, python, tmp_path / "events", MADE)
    assert "pkg/made.py:_impl" in deps["test_function_made"][0], deps["test_function_made"]
    assert "pkg/made.py:_other" in deps["test_code_set"][0], deps["test_code_set"]
    own = deps["test_run_path"][0]
    # (3.11 rewrites what is imported: a file runpy runs is a file opened.)
    assert {"pkg/script.py:run", "pkg/script.py"} & own, own


@pytest.mark.parametrize("python", _interpreters())
def test_a_doctest_depends_on_the_docstring_that_holds_it(python, tmp_path):
    """Its examples call nothing of the project: its own set names the block whose
    docstring holds them (the top level for the module's and `__test__`), or the file."""
    assert python is not None, "no Python 3.12: set MTEST_TEST_PYTHON312 (./dev does)"
    deps = _record(tmp_path, python, tmp_path / "events", DOCTESTS,
                   ("--doctest-modules", "--doctest-glob=*.rst", "pkg", "docs"))
    expected = {"pkg.doc": "pkg/doc.py:<module>", "pkg.doc.f": "pkg/doc.py:f",
                "pkg.doc.A.m": "pkg/doc.py:A.m", "pkg.doc.__test__.extra":
                "pkg/doc.py:<module>", "guide.rst": "docs/guide.rst"}
    assert set(deps) == set(expected), deps
    for test, dependency in expected.items():
        assert dependency in deps[test][0], (test, deps[test])


MEMOIZED = {
    "pkg/__init__.py": "",
    "pkg/tags.py": """
        import functools

        def _version():
            return 3

        @functools.lru_cache
        def platform_tags():
            return ["tag%d" % _version()]

        class Finder:
            @functools.cache
            def search(self):
                return _version()

        FINDER = Finder()
    """,
    "tests/test_tags.py": """
        from pkg import tags

        def test_first():
            assert tags.platform_tags() == ["tag3"]
            assert tags.FINDER.search() == 3

        def test_second():
            assert tags.platform_tags() == ["tag3"]

        def test_third():
            assert tags.FINDER.search() == 3

        def test_other():
            pass
    """,
}


@pytest.mark.parametrize("python", _interpreters())
def test_a_value_from_a_cache_depends_on_the_code_that_computed_it(python, tmp_path):
    """test_second and test_third run no code of `platform_tags` or `search`: the values
    come from the caches test_first filled. A change to `_version` must reach them."""
    assert python is not None, "no Python 3.12: set MTEST_TEST_PYTHON312 (./dev does)"
    deps = _record(tmp_path, python, tmp_path / "events", MEMOIZED)
    own = {test: sets[0] for test, sets in deps.items()}
    computed = {"pkg/tags.py:_version", "pkg/tags.py:platform_tags",
                "pkg/tags.py:Finder.search"}
    assert computed <= own["test_first"], own["test_first"]
    for test in ("test_second", "test_third"):
        assert computed <= own[test], (test, own[test])
    assert own["test_other"] == {"tests/test_tags.py:test_other"}, own["test_other"]


def _deps_by_test(events):
    """{test: (its own blocks and files, what ran before it)}, resolved from the wire."""
    sources, blocks, sets, found = {}, {}, {}, {}
    for e in events:
        if e["e"] == "source":
            sources[e["n"]] = e["path"]
        elif e["e"] == "block":
            blocks[e["n"]] = "%s:%s" % (sources[e["source"]], e["name"])
        elif e["e"] == "deps":
            sets[e["n"]] = {blocks[b] for b in e["blocks"]} | {sources[f] for f in e["files"]}
        elif e["e"] == "finish" and "deps" in e:
            found[e["id"].split("::")[-1]] = [sets[n] for n in e["deps"]]
    return found


@pytest.mark.parametrize("python", _interpreters())
def test_each_test_records_its_code_its_fixtures_and_what_ran_before_it(python, tmp_path):
    assert python is not None, "no Python 3.12: set MTEST_TEST_PYTHON312 (./dev does)"
    deps = _record(tmp_path, python, tmp_path / "events")
    assert set(deps) == {"test_add", "test_mul", "test_box", "test_big", "test_big_again",
                         "test_data"}
    own = {test: sets[0] for test, sets in deps.items()}
    assert own["test_add"] == {"pkg/calc.py:add", "tests/test_calc.py:test_add"}
    assert own["test_mul"] == {"pkg/calc.py:mul", "tests/test_calc.py:test_mul"}
    assert own["test_box"] == {"pkg/calc.py:Box.grow", "tests/test_calc.py:test_box"}
    # A session fixture is set up once; both of its tests depend on what it ran.
    for test in ("test_big", "test_big_again"):
        assert own[test] == {"pkg/calc.py:add", "tests/conftest.py:big",
                             "tests/test_calc.py:%s" % test}, test
    assert own["test_data"] == {"tests/test_calc.py:test_data", "tests/data.txt"}
    # What ran while the tests were imported counts for every test of the module.
    early = deps["test_add"][1]
    assert early == {"pkg/__init__.py:<module>", "pkg/empty.py:<module>",
                     "pkg/calc.py:<module>", "pkg/calc.py:Box", "tests/conftest.py:<module>",
                     "tests/test_calc.py:<module>"}
    assert all(sets[1] == early for sets in deps.values())
    assert not any("unused" in block for sets in deps.values() for s in sets for block in s)


BRANCHES = {
    "pkg/__init__.py": "",
    "pkg/table.py": """
        def setup(kind):
            table = {}
            if kind == "fast":
                table["a"] = 1
            else:
                table["b"] = 2
            return table

        TABLE = setup("fast")
    """,
    "tests/test_table.py": """
        from pkg.table import TABLE, setup

        def test_table():
            assert TABLE == {"a": 1}

        def test_slow():
            assert setup("slow") == {"b": 2}
    """,
}


@pytest.mark.parametrize("python", _interpreters())
def test_the_lines_that_ran_before_the_tests_go_with_their_file_on_312(python, tmp_path):
    """3.12+: the lines of the project's code that ran while collection imported it (each
    file's once, on its `source` event), not those the tests ran; the set of what ran
    before the tests says so. 3.11: no lines (what ran before counts whole)."""
    assert python is not None, "no Python 3.12: set MTEST_TEST_PYTHON312 (./dev does)"
    deps = _record(tmp_path, python, tmp_path / "events", BRANCHES)
    assert "pkg/table.py:setup" in deps["test_table"][1]
    events = read_events(tmp_path / "events")
    lines = {e["path"]: e.get("early") for e in events if e["e"] == "source"}
    before = [e for e in events if e["e"] == "deps" and e.get("before")]
    assert len(before) == 1 and len([e for e in events if e["e"] == "deps"]) == 3, events
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version == "True":
        # setup's lines 2-5 and 8, its call on 10 -- not 6-7, the branch the import did not
        # take (test_slow took it, in its own time).
        assert lines["pkg/table.py"] == [2, 3, 4, 5, 8, 10], lines
        assert lines["tests/test_table.py"] == [2, 4, 7], lines  # its imports and defs
    else:
        assert set(lines.values()) == {None}, lines


def test_recording_is_off_unless_mtest_says_so(tmp_path, monkeypatch):
    deps = _record(tmp_path, sys.executable, tmp_path / "events")
    assert deps
    monkeypatch.setenv("MTEST_IMPACT", "0")
    events = tmp_path / "off.events"
    env = dict(os.environ, PYTHONPATH=str(PLUGIN_DIR), MTEST_EVENTS=str(events))
    subprocess.run([sys.executable, "-m", "mtest_boot", "-p", "mtest_events",
                    "-p", "no:cacheprovider", "-q"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    kinds = {e["e"] for e in read_events(events)}
    assert "finish" in kinds and not kinds & {"source", "block", "deps"}


@pytest.mark.parametrize("python", _python312())
def test_a_monitoring_tool_taken_before_it_leaves_the_run_unrecorded_and_says_so(python,
                                                                                   tmp_path):
    """Another tool holding sys.monitoring's tool id (a `sitecustomize` here): the tests run,
    none has a record (so `--changed` runs them all), and the run says why, once."""
    assert python is not None, "no Python 3.12: set MTEST_TEST_PYTHON312 (./dev does)"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nsys.monitoring.use_tool_id(3, 'another tool')\n")
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    events = tmp_path / "events"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(PLUGIN_DIR)]),
               MTEST_EVENTS=str(events), MTEST_IMPACT="1")
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run([python, "-m", "mtest_boot", "-p", "mtest_events",
                           "-p", "no:cacheprovider", "-q"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    found = read_events(events)
    finishes = [e for e in found if e["e"] == "finish"]
    assert len(finishes) == 1 and "deps" not in finishes[0]
    notices = [e["text"] for e in found if e["e"] == "notice"]
    assert len(notices) == 1 and "not recorded in this run" in notices[0], notices
    assert "another tool" in notices[0] or "in use" in notices[0], notices


NESTED = """
    import sys
    if sys:
        def in_if():
            pass
    else:
        class InElse:
            def method(self):
                pass
    try:
        def in_try():
            pass
    except Exception:
        def in_handler():
            pass
    finally:
        def in_finally():
            pass
    with open(__file__) as f:
        def in_with():
            pass
    for _ in ():
        pass
    else:
        def in_for_else():
            pass
    match 1:
        case 1:
            def in_case():
                pass
    async def outer():
        def inner():
            pass
"""


@pytest.mark.parametrize("lambdas", [False, True])
def test_the_rewriting_marks_every_block_wherever_its_definition_stands(lambdas):
    """3.11's rewriting: each function and class body, nested in any compound statement,
    adds its own key; with a lambda in the source, the lambda adds its enclosing block's."""
    import ast

    import mtest_rewrite

    source = textwrap.dedent(NESTED) + ("HOOK = lambda: in_if()\n" if lambdas else "")
    tree = ast.parse(source)
    mtest_rewrite.instrument(tree, "m.py", source.encode())
    marks = [n.args[0].value[1] for n in ast.walk(tree)
             if isinstance(n, ast.Call) and getattr(n.func, "id", "") == mtest_rewrite.SEEN]
    expected = ["<module>", "in_if", "InElse", "InElse.method", "in_try", "in_handler",
                "in_finally", "in_with", "in_for_else", "in_case", "outer",
                "outer.<locals>.inner"]
    assert sorted(marks) == sorted(expected + (["<module>"] if lambdas else []))


PYC = {
    "tests/test_pyc.py": """
        from _pytest.assertion import rewrite

        def test_pytests_own_cache_name_is_untouched():
            assert rewrite.PYC_TAIL == "." + rewrite.PYTEST_TAG + rewrite.PYC_EXT
    """,
}


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11's rewriting (3.12+ monitors)")
def test_the_rewritten_test_modules_have_a_cache_of_their_own_and_pytests_is_untouched(
        tmp_path, monkeypatch):
    """3.11: a test module rewritten with the marks is cached under mtest's tag (a plain
    pytest run would otherwise load it, and mtest a plain run's); pytest's `PYC_TAIL` and
    its own cache files stay as plain pytest has them (pytest's own tests look for them,
    in pytest runs inside theirs)."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    _record(tmp_path, sys.executable, tmp_path / "events", PYC)
    cache = sorted(p.name for p in (tmp_path / "tests" / "__pycache__").iterdir())
    assert cache == ["test_pyc.%s-pytest-%s-mtest-1.pyc" % (
        sys.implementation.cache_tag, pytest.__version__)], cache
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    plain = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    cache = sorted(p.name for p in (tmp_path / "tests" / "__pycache__").iterdir())
    assert len(cache) == 2 and "test_pyc.%s-pytest-%s.pyc" % (
        sys.implementation.cache_tag, pytest.__version__) in cache, cache
