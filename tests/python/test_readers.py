"""`mtest_readers`: who reads a module's changed constants, and when that cannot be told
(the module is reached otherwise than by the names in it)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import PLUGIN_DIR

sys.path.insert(0, str(PLUGIN_DIR))
import mtest_readers  # noqa: E402


@pytest.mark.parametrize("text, named", [
    ("consts", True),  # getattr(pkg, "consts"), import_module("consts")
    (".consts", True),  # import_module(".consts", "pkg")
    ("pkg.consts", True),
    ("pkg.consts.LIMIT", True),  # mock.patch
    ("see pkg.consts for the limits", True),
    ("the consts of the package", False),  # prose
    ("pkg/consts.py", False),  # a path
    ("consts.py", False),  # a file's name
    ("pkg.constants", False),
    ("my_consts", False),
])
def test_a_string_names_a_module_by_its_dotted_name(text, named):
    assert mtest_readers.mentions(text, "consts") is named


PROJECT = {
    "pkg/__init__.py": "",
    "pkg/consts.py": """
        LIMIT = 10
        NAMES = ("a", "b")

        def limit():
            return LIMIT
    """,
    "pkg/use.py": """
        from pkg.consts import NAMES as ALL

        def names():
            return ALL

        class Box:
            def size(self, n=ALL):
                return n
    """,
    "tests/test_x.py": '''
        import pkg.consts
        from pkg import consts as c

        def test_attr():
            assert pkg.consts.LIMIT == c.LIMIT

        def test_doc():
            """
            >>> import pkg.consts; pkg.consts.LIMIT
            10
            """

        def test_other():
            assert c.limit
    ''',
}


def _readers(root, files, names, extra=None):
    for path, text in {**files, **(extra or {})}.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    request = {"files": sorted({**files, **(extra or {})}), "names": names, "env": False}
    done = subprocess.run([sys.executable, "-m", "mtest_impact", "readers"], cwd=root,
                          input=json.dumps(request), capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(PLUGIN_DIR)), check=True)
    return json.loads(done.stdout)["files"]


def test_the_readers_of_a_constant_are_the_blocks_that_read_it_by_any_name(tmp_path):
    found = _readers(tmp_path, PROJECT, {"pkg/consts.py": ["LIMIT", "NAMES"]})
    assert sorted(map(tuple, found["pkg/consts.py"])) == [
        ("pkg/consts.py", "limit"),
        ("pkg/use.py", "Box"),  # a default: evaluated by the `def` statement, in `Box`
        ("pkg/use.py", "Box.size"),
        ("pkg/use.py", "names"),
        ("tests/test_x.py", "test_attr"),
        ("tests/test_x.py", "test_doc"),  # an example in its docstring
    ]


@pytest.mark.parametrize("extra", [
    {"tests/test_y.py": "from pkg import consts\n\ndef test_y():\n    assert vars(consts)\n"},
    {"tests/test_y.py": "import pkg.consts\n\ndef test_y():\n    print(pkg.consts)\n"},
    {"tests/test_y.py": "import pkg.consts as c\n\ndef test_y():\n    c.__dict__\n"},
    {"tests/test_y.py": "from unittest import mock\n\n"
                        "def test_y():\n    mock.patch('pkg.consts.LIMIT', 1)\n"},
    {"tests/test_y.py": "import importlib\n\n"
                        "def test_y(name):\n    importlib.import_module(name)\n"},
    {"tests/test_y.py": "import sys\n\ndef test_y():\n    list(sys.modules.values())\n"},
    {"tests/test_y.py": "from pkg.consts import *\n"},
    {"pkg/consts.py": "LIMIT = 10\nNAMES = ()\nX = globals()\n"},  # its own namespace
    {"pyproject.toml": "[tool.x]\nsettings = 'pkg.consts'\n"},
    {"setup.cfg": "[x]\nmodule = consts\n"},
])
def test_a_module_reached_otherwise_than_by_its_names_has_no_readers_known(tmp_path, extra):
    assert _readers(tmp_path, PROJECT, {"pkg/consts.py": ["LIMIT"]}, extra) == \
        {"pkg/consts.py": None}


def test_a_module_that_imported_a_changed_value_is_judged_as_its_own(tmp_path):
    """pkg.use holds NAMES (as ALL): a `*` import of it is one of NAMES'."""
    extra = {"tests/test_y.py": "from pkg.use import *\n"}
    assert _readers(tmp_path, PROJECT, {"pkg/consts.py": ["NAMES"]}, extra) == \
        {"pkg/consts.py": None}
    assert _readers(tmp_path, PROJECT, {"pkg/consts.py": ["LIMIT"]}, extra)["pkg/consts.py"]


@pytest.mark.parametrize("extra", [
    {"tests/test_y.py": "import importlib\n\n"
                        "def test_y():\n    importlib.import_module('json')\n"},
    {"tests/test_y.py": "import sys\n\n"
                        "def test_y(monkeypatch, name):\n"
                        "    monkeypatch.setitem(sys.modules, name, None)\n"},
    {"tests/test_y.py": "'''Docs of pkg.consts: prose reads nothing.'''\n"},
    {"pyproject.toml": "[tool.coverage]\nomit = ['pkg/consts.py']\n"},
])
def test_what_does_not_reach_a_module_leaves_its_readers_known(tmp_path, extra):
    assert _readers(tmp_path, PROJECT, {"pkg/consts.py": ["LIMIT"]}, extra)["pkg/consts.py"]
