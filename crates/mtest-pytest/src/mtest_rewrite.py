"""Python 3.11's recording for `mtest_impact`: the project's modules are rewritten as they
are imported, so that every block's first statement adds the block's key to the set being
recorded (`_mtest_seen((file, name))`, a builtin bound to that set's `add`); a lambda adds
its enclosing block's key before it computes its value.

The project's own modules are imported through a path hook for the project's directories
(a loader that rewrites them, its bytecode cached beside the usual one under its own tag);
pytest's test modules and conftests, which pytest's assertion rewriting imports, are
rewritten in that rewriting (its `rewrite_asserts`, chained once pytest is imported;
its bytecode cache gets a tag of its own too).

Not seen on 3.11: a generator resumed in a later test than the one that started it; code
compiled from strings.
"""

import ast
import builtins
import importlib.machinery as machinery
import importlib.util
import marshal
import os
import sys

import mtest_impact as impact

TAG = "mtest-1"
SEEN = "_mtest_seen"


class Rewriting:
    def __init__(self, recorder):
        self.recorder = recorder
        self.rearm(())
        sys.path_hooks.insert(0, path_hook)
        for path in list(sys.path_importer_cache):
            if _is_project_dir(path):
                del sys.path_importer_cache[path]

    def rearm(self, seen):
        """The builtin adds to the set being recorded now."""
        builtins._mtest_seen = self.recorder.seen.add


def _is_project_dir(path):
    return isinstance(path, str) and impact.relpath(os.path.join(path, "_.py")) is not None


def path_hook(path):
    if not _is_project_dir(path) or not os.path.isdir(path or "."):
        raise ImportError("not a directory of the project")
    return machinery.FileFinder(
        path,
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES),
        (Loader, machinery.SOURCE_SUFFIXES),
        (machinery.SourcelessFileLoader, machinery.BYTECODE_SUFFIXES),
    )


class Loader(machinery.SourceFileLoader):
    """Loads a project module rewritten; its bytecode is cached under its own tag, keyed by
    the source's checksum. An import in a test is recorded apart (see
    `recording_imports`)."""

    def get_code(self, fullname):
        rel = impact.relpath(self.path)
        if rel is None:
            return super().get_code(fullname)
        data = impact.read(rel)
        checksum = impact.file_sum(data)
        impact.R.see_code(rel, checksum)
        head = importlib.util.MAGIC_NUMBER + checksum.encode("ascii")
        cache = _cache_path(self.path)
        try:
            with open(cache, "rb") as f:
                cached = f.read()
            if cached.startswith(head):
                return marshal.loads(cached[len(head):])
        except (OSError, ValueError, EOFError, TypeError):
            pass
        tree = ast.parse(data, self.path)
        instrument(tree, rel, data)
        code = compile(tree, self.path, "exec", dont_inherit=True)
        _write(cache, head + marshal.dumps(code))
        return code


def recording_imports(exec_module):
    """`exec_module` (of a loader class) with an import in a test recorded apart: what
    runs until the module is done joins the late list (`mtest_impact.Recorder.
    import_begins`)."""

    def exec_recorded(loader, module):
        __tracebackhide__ = True  # not in pytest's tracebacks (an import that fails)
        if not impact.R.import_begins():
            return exec_module(loader, module)
        try:
            return exec_module(loader, module)
        finally:
            impact.R.import_ends()
    return exec_recorded


Loader.exec_module = recording_imports(machinery.SourceFileLoader.exec_module)


def _cache_path(path):
    folder, name = os.path.split(path)
    stem = name.rsplit(".", 1)[0]
    return os.path.join(folder, "__pycache__",
                        "%s.%s-%s.pyc" % (stem, sys.implementation.cache_tag, TAG))


def _write(path, data):
    """Best effort, atomically: a cache that cannot be written is rewritten next time."""
    if sys.dont_write_bytecode:
        return
    temp = "%s.%d.tmp" % (path, os.getpid())
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temp, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass


def instrument(tree, rel, source):
    """Every block of `tree` (a module of file `rel`, parsed from `source`) adds its key
    when it starts. Without a lambda in the source, only statements can hold a block: the
    expressions are not walked."""
    _insert(tree.body, (rel, "<module>"), module=True)
    children = ast.iter_child_nodes if b"lambda" in source else _statements
    _visit(tree, rel, "", children)  # every node it adds is placed (no
    # fix_missing_locations: it would give pytest's own unplaced nodes an end before
    # their start)


def _statements(node):
    """The statements right inside `node` (a module, a compound statement, a handler)."""
    fields = _STATEMENT_FIELDS.get(type(node))
    if fields is None:
        fields = _STATEMENT_FIELDS[type(node)] = tuple(
            f for f in ("body", "handlers", "orelse", "finalbody", "cases")
            if f in type(node)._fields)
    for field in fields:
        value = getattr(node, field)
        if isinstance(value, list):
            yield from value


_STATEMENT_FIELDS = {}  # a node's type -> its fields that may hold statements


def _visit(node, rel, scope, children):
    for child in children(node):
        if isinstance(child, impact._DEFS):
            name = scope + child.name
            inner = name + ("." if isinstance(child, ast.ClassDef) else ".<locals>.")
            _visit(child, rel, inner, children)
            _insert(child.body, (rel, name))
        elif isinstance(child, ast.Lambda):
            _visit(child, rel, scope, children)
            key = (rel, impact.static_name(scope + "<lambda>"))
            body = child.body
            pair = ast.Tuple([_placed(_call(key), body), body], ast.Load())
            child.body = ast.Subscript(pair, ast.Constant(1), ast.Load())
            _placed(child.body, body)
        else:
            _visit(child, rel, scope, children)


def _call(key):
    return ast.Call(ast.Name(SEEN, ast.Load()), [ast.Constant(key)], [])


def _placed(node, where):
    """`node` and every node in it not placed yet, at `where`'s place (pytest's own
    inserted nodes may lack an end)."""
    start = (where.lineno, where.col_offset)
    end = (getattr(where, "end_lineno", None) or start[0],
           getattr(where, "end_col_offset", None) or start[1])
    if end < start:
        end = start
    for n in ast.walk(node):
        if "lineno" in n._attributes and getattr(n, "lineno", None) is None:
            n.lineno, n.col_offset = start
            n.end_lineno, n.end_col_offset = end
    return node


def _insert(body, key, module=False):
    at = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        at = 1  # the docstring stays first
    if module:
        while at < len(body) and isinstance(body[at], ast.ImportFrom) \
                and body[at].module == "__future__":
            at += 1
    body.insert(at, _seen_statement(key, body[min(at, len(body) - 1)] if body else None))


def _seen_statement(key, where):
    """`_mtest_seen(key)` as a statement placed at `where` (a statement; None: line 1),
    its nodes made placed (a rewritten module has thousands: no walk over them)."""
    if where is None:
        start, end = (1, 0), (1, 0)
    else:
        start = (where.lineno, where.col_offset)
        end = (getattr(where, "end_lineno", None) or start[0],
               getattr(where, "end_col_offset", None) or start[1])
        if end < start:
            end = start
    at = {"lineno": start[0], "col_offset": start[1], "end_lineno": end[0],
          "end_col_offset": end[1]}
    call = ast.Call(ast.Name(SEEN, ast.Load(), **at), [ast.Constant(key, **at)], [], **at)
    return ast.Expr(call, **at)


def chain_pytest():
    """Test modules and conftests: rewritten in pytest's own rewriting. The project's get
    a bytecode cache of their own (pytest's would otherwise serve a plain run's rewriting,
    and a plain run ours); pytest's `PYC_TAIL` stays as it is, and so do the names of the
    files outside the project (a test of pytest's that looks for them, with a pytest run
    inside it or in a subprocess, finds them where plain pytest puts them)."""
    try:
        from _pytest.assertion import rewrite
    except ImportError:
        return
    original = rewrite.rewrite_asserts
    if getattr(original, "_mtest", False):
        return
    tail, ours = rewrite.PYC_TAIL, ".%s-%s%s" % (rewrite.PYTEST_TAG, TAG, rewrite.PYC_EXT)

    def own_pyc(source, pyc):
        name = getattr(pyc, "name", "")
        if name.endswith(tail) and impact.relpath(str(source)) is not None:
            return pyc.with_name(name[:-len(tail)] + ours)
        return pyc

    def rewrite_asserts(mod, source, module_path=None, config=None):
        original(mod, source, module_path, config)
        rel = impact.relpath(str(module_path)) if module_path is not None else None
        if rel is not None:
            impact.R.see_code(rel, impact.file_sum(source))
            instrument(mod, rel, source)

    def read_pyc(source, pyc, trace=lambda x: None):
        code = read_cached(source, own_pyc(source, pyc), trace)
        rel = impact.relpath(str(source)) if code is not None else None
        if rel is not None:
            impact.R.see_code(rel)
        return code

    def write_pyc(state, co, source_hash, pyc):
        return write_cached(state, co, source_hash, own_pyc(co.co_filename, pyc))

    read_cached, write_cached = rewrite._read_pyc, rewrite._write_pyc
    rewrite_asserts._mtest = True
    rewrite.rewrite_asserts = rewrite_asserts
    rewrite._read_pyc = read_pyc
    rewrite._write_pyc = write_pyc
    # A test module or conftest imported in a test, as the project's other modules.
    hook = rewrite.AssertionRewritingHook
    hook.exec_module = recording_imports(hook.exec_module)
