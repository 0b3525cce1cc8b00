"""Spike for issue 27 (session 19), Python 3.11: record each test's project code without
tracing. An import hook rewrites the project's non-test modules (here: under `src/`), as
pytest rewrites asserts: each function, method and class body gets, as its first
statement after its docstring, `_mtest_seen_add(<block id>)` — a C call (`set.add`), no
Python frame, positions copied from the body's first statement so tracebacks keep their
lines. Module bodies are left alone (they run at import, before any test).

Not part of mtest. For this experiment only, packaging's modules, which pytest imports
before any plugin loads, are dropped from `sys.modules` and imported again rewritten.

`valgrind --tool=cachegrind` on packaging 26.4's `tests/test_markers.py` (2,507 call-heavy
tests), 3.11.7: 15.69 G instructions off, 16.40 G on (+4.5%, the rewriting of the modules
at import included); `sys.settrace` around the test function cost +123% there. 55,465
(test, block) pairs of `src/` (settrace: 60,904 with the tests' own functions).

    SPIKE=on|off PYTHONPATH=bench/spikes python -m pytest -p impact_ast311 -p no:cacheprovider
"""
import ast
import builtins
import importlib.abc
import importlib.machinery
import os
import sys

import pytest
ROOT = os.getcwd() + os.sep
SRC = ROOT + "src" + os.sep
MODE = os.environ.get("SPIKE", "on")
_seen = set()
_keys = []
builtins._mtest_seen_add = _seen.add

class Insert(ast.NodeTransformer):
    def __init__(self, path):
        self.path = path
    def _body(self, node, name):
        self.generic_visit(node)
        key = len(_keys); _keys.append((self.path, name))
        call = ast.Expr(ast.Call(ast.Name("_mtest_seen_add", ast.Load()), [ast.Constant(key)], []))
        body = node.body
        at = 1 if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str) else 0
        ref = body[at] if at < len(body) else body[-1]
        ast.copy_location(call, ref); ast.copy_location(call.value, ref); ast.copy_location(call.value.func, ref); ast.copy_location(call.value.args[0], ref)
        node.body = body[:at] + [call] + body[at:]
        return node
    def visit_FunctionDef(self, node): return self._body(node, node.name)
    def visit_AsyncFunctionDef(self, node): return self._body(node, node.name)
    def visit_ClassDef(self, node): return self._body(node, node.name)

class Loader(importlib.machinery.SourceFileLoader):
    def source_to_code(self, data, path, *, _optimize=-1):
        tree = ast.parse(data, path)
        tree = Insert(path).visit(tree)
        return compile(tree, path, "exec", dont_inherit=True)
    def get_code(self, fullname):  # no bytecode cache
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)

class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec and spec.origin and spec.origin.startswith(SRC) and spec.origin.endswith(".py"):
            spec.loader = Loader(name, spec.origin)
            return spec
        return None

if MODE != "off":
    for m in [m for m in sys.modules if m == "packaging" or m.startswith("packaging.")]:
        del sys.modules[m]
    sys.meta_path.insert(0, Finder())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _seen.clear()
    r = yield
    _stats[0] += 1
    _stats[1] += len(_seen)
    return r


_stats = [0, 0]

def pytest_sessionfinish(session):
    if MODE != "off":
        sys.stderr.write("\nSPIKE-AST: tests %d blocks %d keys %d\n" % (_stats[0], _stats[1], len(_keys)))
