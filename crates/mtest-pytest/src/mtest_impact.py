"""What each test depends on, for `mtest --changed`: the project's code it ran, block by
block, and the project's other files it opened.

A *block* is one code object's own source: a function's or a method's body, a class's
body, a module's top level -- each without the blocks nested in it, which are code objects
of their own. It is named by its file (relative to the root, with `/`) and its qualified
name as Python gives it (`Version.__lt__`, `parse.<locals>.inner`, `<module>`); a lambda,
a comprehension or a generator expression belongs to the block whose source holds it. Its
checksum is of its syntax tree without positions, computed from the file on disk (never
from live bytecode, which pytest rewrites), so moving a block or editing a comment changes
nothing.

This module is top-level (not in the `mtest_events` package, which imports pytest) so that
`mtest_boot` can start recording before pytest imports anything of the project: pytest
itself imports `packaging.version` while it reads its configuration.

Recording, per Python:
- 3.12+: two `sys.monitoring` tools. FIND sees every code object's first start and
  disables itself there for good; a project code object is recorded for what is running
  and watched from the next test on by WATCH through local events. WATCH records a code
  object at its first start in a test and switches its events off; they are on again when
  the test ends. A test costs one call per project code object it runs.
- 3.11: the project's modules are rewritten as they are imported (a path hook), and
  pytest's rewriting of test modules and conftests is extended: every block's first
  statement adds the block to the set being recorded (`builtins._mtest_seen`).

What runs before the tests -- pytest's own imports of the project, conftests, the import
of each test module while it is collected -- runs once, and a change there can reach tests
that never run it again. It is recorded in one list, and every test depends on all of it
but the other test modules' own top level (unless its module refers to them): a module
imported while a later file was collected is imported when any test runs, and a test may
find it there without running its top level. Fixtures wider than a function are set up
once, in the first test that needs them: what their set-up ran is kept per fixture and
counts for every test that uses it. A module of the project imported in a test (or
between tests) stays imported for the tests after it in the same process: what ran while
it was imported joins a second growing list, the *late* list, which counts for every later
test (without the other test modules' own code, as above; and without early sums). On
3.12+ the lines that ran before the tests are recorded too (LINE
events, each line once, until collection ends): they go with each file's `source` event,
and the store computes the blocks' early sums from them (see early_sums), so that a change
to what did not run then is no change to what ran before the tests.

A memoized function of the project (`functools.lru_cache`, `functools.cache`) runs once
for many tests: a test that gets its value from the cache runs none of its code. Such a
test depends on the function and on what ran in the tests in which it computed a value in
this process (all of the early list when it computed one before the tests). The memoized
functions are found when collection ends, in the project's modules and their classes; one
made later (in a function, in a module imported by a test) is not known.

A file is hashed when it is first seen (its first code object started, or opened); if it
cannot be read then, the tests depending on it get no record, and mtest runs them again
next time. Nothing here writes events: `mtest_events` asks `declarations` at each test's
end.
"""

import ast
import functools
import hashlib
import inspect
import json
import os
import sys

ROOT = os.getcwd()
_PREFIX = os.path.join(ROOT, "")
_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
# Inside the root but not the project's: the interpreter's own trees (a venv in the
# project), this plugin, caches and other tools' environments.
_OUTSIDE = tuple({os.path.join(os.path.realpath(p), "")
                  for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)} | {_HERE})
_SKIP = frozenset({"site-packages", "dist-packages", "__pycache__", ".tox", ".nox", ".git",
                   ".hg", ".venv", "venv", ".gates", "node_modules", ".pytest_cache",
                   ".hypothesis", ".mypy_cache", ".ruff_cache"})

FIND, WATCH = 3, 4  # sys.monitoring tool ids (0-2 are debuggers', coverage's, profilers')


def relpath(filename):
    """`filename` relative to the root with `/`, or None when it is not the project's."""
    known = _rel.get(filename, 0)
    if known != 0:
        return known
    rel = None
    if isinstance(filename, str) and filename and not filename.startswith("<"):
        path = os.path.normpath(filename if os.path.isabs(filename)
                                else os.path.join(_cwd(), filename))
        if path.startswith(_PREFIX) and not path.startswith(_OUTSIDE):
            parts = path[len(_PREFIX):].split(os.sep)
            if not _SKIP.intersection(parts):
                rel = "/".join(parts)
    _rel[filename] = rel
    return rel


def leave_out(directory):
    """Files under `directory` (pytest's cache, wherever it is configured) are nobody's
    dependency: they change from run to run by themselves."""
    global _OUTSIDE
    _OUTSIDE += (os.path.join(os.path.abspath(directory), ""),)
    _rel.clear()


def _cwd():
    try:
        return os.getcwd()
    except OSError:
        return ROOT


_rel = {}


def file_sum(data):
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def read_sum(rel):
    """The checksum of a project file as it is now, "" if it does not exist, None if it
    cannot be read."""
    try:
        return file_sum(read(rel))
    except FileNotFoundError:
        return ""
    except OSError:
        return None


def read(rel):
    """A project file's bytes, read without recording it as opened by what is running."""
    global _quiet
    _quiet += 1
    try:
        with open(os.path.join(ROOT, rel), "rb") as f:
            return f.read()
    finally:
        _quiet -= 1


_quiet = 0


# --- blocks: what a file's source holds ------------------------------------------------

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def block_sums(source):
    """{qualified name: checksum} of every block of a module's source (bytes or str),
    and, when its top level binds names to literals, `<module>;` (the top level with the
    literals left out) and `<module>;NAME` (the literals bound to NAME): see
    `literal_names`. Raises SyntaxError, ValueError or RecursionError for what cannot be
    parsed."""
    texts = {}
    module = []
    tree = ast.parse(source)
    literals = [(names, stmt.value) for stmt in tree.body
                for names in [literal_names(stmt)] if names]
    _dump(tree, module, "", texts, {id(value): None for _, value in literals})
    parts = texts["<module>"] = [module]
    by_name = {}
    for names, value in literals:
        text = []
        _dump(value, text, "", texts)
        parts.append(text)
        for name in names:
            by_name.setdefault("<module>;" + name, []).append(text)
    if literals:
        by_name["<module>;"] = [module]
    texts.update(by_name)
    return {name: _checksum(parts) for name, parts in texts.items()}


def _checksum(parts):
    return hashlib.blake2b("\x1e".join("\x1f".join(t) for t in parts).encode(
        "utf-8", "surrogatepass"), digest_size=8).hexdigest()


# A module's top-level statement that binds plain names to a *literal* -- a constant, a
# number with a sign, a tuple, list, set or dict of literals (hashable where they must be)
# -- does nothing but bind them: no name is read, nothing is called, nothing can raise.
# A change of its value reaches only what reads those names afterwards (see
# mtest_readers), when nothing else of the top level changed. Not a dunder (beside
# `__version__`: Python and tools read `__all__`, `__path__`, `__test__`... by name
# themselves), nor what pytest reads from a module (`pytest_plugins`, `collect_ignore`).

def literal_names(stmt):
    """The names `stmt` binds to a literal, or None when it is no such statement."""
    if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
        names = [t.id for t in stmt.targets]
    elif isinstance(stmt, ast.AnnAssign) and stmt.simple and stmt.value is not None:
        names = [stmt.target.id]
    else:
        return None
    if not _literal(stmt.value) or not all(map(_plain_name, names)):
        return None
    return names


def _plain_name(name):
    if name.startswith("__") and name.endswith("__"):
        return name == "__version__"
    return not name.startswith(("pytest", "collect_ignore"))


def _literal(node, hashable=False):
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return (isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant)
                and type(node.operand.value) in (int, float, complex))
    if isinstance(node, ast.Tuple):
        return all(_literal(e, hashable) for e in node.elts)
    if hashable:
        return False
    if isinstance(node, ast.List):
        return all(map(_literal, node.elts))
    if isinstance(node, ast.Set):
        return all(_literal(e, True) for e in node.elts)
    if isinstance(node, ast.Dict):
        return (all(k is not None and _literal(k, True) for k in node.keys)
                and all(map(_literal, node.values)))
    return False


def _dump(node, out, scope, texts, masked=None):
    """`masked`: {id(list of statements): where its hole starts} (see `_early_sum`), and
    {id(a node): None} for a node left out (a literal: see block_sums)."""
    if masked and id(node) in masked:
        out.append("<literal>")
        return
    if isinstance(node, _DEFS):
        name = scope + node.name
        head = [type(node).__name__, node.name]
        body = []
        inner = name + ("." if isinstance(node, ast.ClassDef) else ".<locals>.")
        for field, value in ast.iter_fields(node):
            if field == "body":
                _dump_value(value, body, inner, texts, masked)
            else:
                head.append(field)
                _dump_value(value, head, scope, texts, masked)
        out.extend(head)  # the `def`/`class` statement runs in the enclosing block
        texts.setdefault(name, []).append(head + body)
        return
    out.append(type(node).__name__)
    for field, value in ast.iter_fields(node):
        out.append(field)
        _dump_value(value, out, scope, texts, masked)
    out.append(")")


def _dump_value(value, out, scope, texts, masked=None):
    if isinstance(value, ast.AST):
        _dump(value, out, scope, texts, masked)
    elif isinstance(value, list):
        start = masked.get(id(value), len(value)) if masked else len(value)
        out.append("[")
        for v in value[:start] if start < len(value) else value:
            _dump_value(v, out, scope, texts, masked)
        if start < len(value):
            out.append("<hole>")
        out.append("]")
    else:
        out.append(type(value).__name__ + repr(value))


def static_name(qualname):
    """The block a runtime code object's qualified name belongs to: a lambda's,
    comprehension's or generator expression's is the block whose source holds it."""
    if "<" not in qualname:
        return qualname
    parts = qualname.split(".")
    while parts and parts[-1].startswith("<"):
        parts.pop()
    return ".".join(parts) if parts else "<module>"


# --- what of a block ran before the tests ---------------------------------------------
#
# A block that ran before the tests (collection imported it, a class was built) counts for
# every test after it, whether or not the change reaches what it ran then. On Python 3.12+
# the lines that ran before the tests are known (`sys.monitoring` LINE events, each line
# once); a block's statements that did not run then are masked: the *early sum* is the
# checksum of the block with, in each list of its statements, the part from the first
# statement that did not run to the list's end replaced by a hole, and of the block's
# symbol table (which names are local, global, free: a statement in a hole can change
# them) -- so a change inside a hole leaves the early sum as it was, and the code that ran
# before the tests, had it run changed, would have run the same statements the same way.
#
# Why a hole is safe: Python enters a list of statements at its first and goes on in
# order, and every statement that has code raises a LINE event when it starts (PEP 626;
# checked by the tests on every Python at hand); so nothing after a statement that did
# not run, in its list, ran either. Statements without code (a docstring, `global`,
# `nonlocal`, an annotation without a value, and `assert`, which `-O` removes) never start
# a hole. A list where something ran after a statement that did not gets no hole at all.
# The hole's place (the path to its list, and where in it the hole starts) is kept with
# the early sum: the statements before it must be the same, so it is in the same place in
# a new version of the block, whose early sum is computed there.

_NO_LINE = (ast.Global, ast.Nonlocal, ast.Assert, ast.Pass)
_LISTS = ("body", "orelse", "finalbody")


def early_sums(source, lines):
    """{block name: [holes, early sum]} for each block of `source` with a statement that
    did not run, given `lines`, the lines that ran before the tests (a block none of whose
    statements ran, and a name two blocks share, get none)."""
    tree = ast.parse(source)
    table = _symtable(source)
    answer = {}
    for name, node in _blocks(tree).items():
        if node is None:
            continue
        holes = []
        ran = _find_holes(node.body, ["body"], lines, holes)
        if ran and holes:
            answer[name] = [holes, _early_sum(node, holes, table, name)]
    return answer


def early_sums_now(source, asked):
    """{block name: early sum now} for `asked`, {block name: holes} (a block gone, or whose
    holes are not where they were, has none)."""
    tree = ast.parse(source)
    table = _symtable(source)
    blocks = _blocks(tree)
    answer = {}
    for name, holes in asked.items():
        node = blocks.get(name)
        if node is not None:
            total = _early_sum(node, holes, table, name)
            if total is not None:
                answer[name] = total
    return answer


def _blocks(tree):
    """{qualified name: node} of every block (None for a name two blocks share)."""
    found = {"<module>": tree}

    def walk(node, scope):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _DEFS):
                name = scope + child.name
                found[name] = None if name in found else child
                walk(child, name + ("." if isinstance(child, ast.ClassDef) else ".<locals>."))
            else:
                walk(child, scope)
    walk(tree, "")
    return found


def _start(stmt):
    decorators = getattr(stmt, "decorator_list", None)
    return min([stmt.lineno] + [d.lineno for d in decorators or ()])


def _ran(stmt, lines):
    return any(line in lines for line in range(_start(stmt), stmt.end_lineno + 1))


def _has_code(stmt, first):
    """Whether `stmt` raises a LINE event whenever it starts (`first`: it is the first of
    its list: a string there may be a docstring)."""
    if isinstance(stmt, _NO_LINE):
        return False
    if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
        return False
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and first:
        return False
    return True


def _find_holes(stmts, path, lines, holes):
    """Adds the holes of list `stmts` (at `path`) and of the lists in its statements that
    ran; True when a statement of it ran."""
    ran = [_ran(s, lines) for s in stmts]
    start = next((i for i, s in enumerate(stmts) if not ran[i] and _has_code(s, i == 0)), None)
    if start is not None and any(ran[start:]):
        start = None  # something ran after it: no hole here
    if start is not None:
        holes.append(path + [start])
    for i, stmt in enumerate(stmts[:start]):
        if ran[i] and not isinstance(stmt, _DEFS):
            for field, inner in _inner_lists(stmt):
                _find_holes(inner, path + [i] + field, lines, holes)
    return any(ran)


def _inner_lists(stmt):
    """The lists of statements a statement holds (not a nested block's body), each with
    its path from the statement."""
    for field in _LISTS:
        value = getattr(stmt, field, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            yield [field], value
    for field in ("handlers", "cases"):
        for j, part in enumerate(getattr(stmt, field, None) or ()):
            yield [field, j, "body"], part.body


def _early_sum(node, holes, table, name):
    """The checksum of block `node` with its holes masked, and of its symbol table; None
    when a hole's path does not lead to a list long enough."""
    masked = {}
    for hole in holes:
        *path, start = hole
        target = node
        try:
            for step in path:
                target = target[step] if isinstance(step, int) else getattr(target, step)
        except (AttributeError, IndexError, TypeError):
            return None
        if not isinstance(target, list) or not isinstance(start, int) or len(target) <= start:
            return None
        masked[id(target)] = start
    out, texts = [], {}
    head = [type(node).__name__]
    for field, value in ast.iter_fields(node):
        if field == "body":
            _dump_value(value, out, "", texts, masked)
        elif not isinstance(node, ast.Module):
            head.append(field)
            _dump_value(value, head, "", texts)
    signature = _signature(table, name)
    if signature is None:
        return None
    # A `yield` in a hole makes a function a generator: a call then runs none of it.
    kind = "generator" if _yields(node.body) else "plain"
    text = "\x1f".join(head + out + [signature, kind])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _yields(stmts):
    """Whether the block whose statements are `stmts` has a `yield` of its own."""
    todo = list(stmts)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(node, _DEFS + (ast.Lambda,)):
            todo.extend(ast.iter_child_nodes(node))
    return False


def _symtable(source):
    import symtable

    return symtable.symtable(source if isinstance(source, str) else
                             source.decode("utf-8", "surrogateescape"), "<block>", "exec")


def _signature(table, name):
    """How block `name` binds its names, as text (None when its table is not found): what a
    statement in a hole can change for the statements outside it. A name the block only
    reads from the globals is left out (a hole may read one more, or one less); a nested
    block's own bindings are its own (its early sum has them)."""
    if name != "<module>":
        for part in name.split("."):
            if part == "<locals>":
                continue
            found = [t for t in table.get_children()
                     if t.get_name() == part and t.get_type() in ("function", "class")]
            if len(found) != 1:
                return None
            table = found[0]
    out = [table.get_type()]
    for symbol in sorted(table.get_symbols(), key=lambda s: s.get_name()):
        if (symbol.is_global() and not symbol.is_declared_global() and not symbol.is_assigned()
                and not symbol.is_imported()):
            continue
        out.append("%s:%s" % (symbol.get_name(), "".join(
            "1" if getattr(symbol, flag)() else "0" for flag in _FLAGS)))
    return " ".join(out)


_FLAGS = ("is_imported", "is_parameter", "is_global", "is_declared_global", "is_local",
          "is_annotated", "is_free", "is_assigned", "is_namespace", "is_nonlocal")


# --- recording -----------------------------------------------------------------------

class Recorder:
    """What is being recorded now: `seen` (block keys on 3.11, the project files opened as
    ("", path)) and `ran` (3.12+: the project's code objects that started), and what was
    kept from before the tests. Code objects are known by identity: two with the same code
    in two files are equal (an empty `__init__.py` and another)."""

    def __init__(self):
        self.on = False
        self.why_not = None
        self.seen = set()  # what ran since the last take, as keys
        self.ran = []  # 3.12+: the code objects that ran since the last take, each once
        self.early = []  # everything that ran before the tests, in order, each once
        self.early_known = set()
        # 3.12+: the lines of the project's code that ran before the tests, by file (see
        # early_sums); None while the tests have not begun (they are being recorded).
        self.early_lines = None
        # What ran while a project module was imported in a test (or between tests): it
        # stays imported, so all of it counts for every later test of this process (see
        # import_begins).
        self.late = []
        self.late_known = set()
        # While a module is imported in a test: what was recorded of the test before, and
        # where the import began in `ran` (see import_begins).
        self.importing = None
        self.late_before = 0  # how much of the late list the test in flight depends on
        self.test_files = set()  # the test modules' files (collected)
        self.refs = {}  # test module's file -> the project's files its names come from
        self.fixtures = {}  # a fixture definition wider than a function -> what it ran
        # A fixture's name -> the functions of the fixtures that asked for it (see
        # note_requester), and the fixture definitions already noted.
        self.requesters = {}
        self.requesting = set()
        self.sources = {}  # project file -> its checksum when first seen (None: unreadable)
        # Project files whose code is recorded: reading one (pytest does, to rewrite a
        # test module) is no dependency beyond its code.
        self.code_files = set()
        # The project's code objects seen: id -> block key (file, name), and id -> the code
        # object (kept alive, so that its id is never another's).
        self.keys = {}
        self.codes = {}
        self.backend = None
        self.modules_checked = 0  # how many of sys.modules note_unseen_modules looked at

    def code_key(self, code):
        """A code object's block key, None when it is not the project's (its first start)."""
        rel = relpath(code.co_filename) if code.co_filename.endswith(".py") else None
        if rel is None:
            return None
        key = self.keys[id(code)] = (rel, static_name(code.co_qualname))
        self.codes[id(code)] = code
        self.see_code(rel)
        return key

    def see_code(self, rel, checksum=None):
        self.code_files.add(rel)
        if checksum is not None:
            self.sources.setdefault(rel, checksum)
        self.see_source(rel)

    def see_source(self, rel):
        if rel not in self.sources:
            self.sources[rel] = read_sum(rel)

    def take(self):
        """What was recorded since the last take, as keys; recording goes on afresh."""
        if self.importing is not None:  # an import that raised: all since counts
            self.import_ends()
        seen, self.seen = self.seen, set()
        ran, self.ran = self.ran, []
        if self.backend is not None:
            self.backend.rearm(ran)
        if ran:
            seen.update(map(self.keys.__getitem__, map(id, ran)))
        return seen

    def early_of(self, module):
        """What a test of `module` depends on of what ran before the tests: all of it,
        except the top level of the other test modules, unless `module` refers to them
        (imports them, or something of theirs)."""
        return self._seen_by(self.early, module)

    def late_of(self, count, module):
        """What a test of `module` depends on of the first `count` things of the late list
        (see import_begins): as early_of."""
        return self._seen_by(self.late[:count], module)

    def _seen_by(self, keys, module):
        mine = self.refs.get(module, set()) | {module}
        tests = self.test_files
        return frozenset(k for k in keys if not k[0] or k[0] not in tests or k[0] in mine)

    def import_begins(self):
        """A module of the project starts being imported, once the tests began: it stays
        imported for every later test of this process -- its constants, its classes, its
        registrations, what the code it called built -- so what runs until it is done
        joins the late list (import_ends). Recorded apart from the rest of the test, with
        the test's code watched again: what ran earlier in the test and runs again in the
        import is seen again. False when not begun (before the tests, or within another)."""
        if self.early_lines is None or self.importing is not None:
            return False
        self.importing = (self.seen, len(self.ran))
        self.seen = set()
        if self.backend is not None:
            self.backend.rearm(list(self.ran))
        return True

    def import_ends(self):
        """The module is imported (or its import raised): what ran since it began joins
        the late list, and the test's own."""
        if self.importing is None:
            return
        (before, start), self.importing = self.importing, None
        keys = self.seen
        keys.update(map(self.keys.__getitem__, map(id, self.ran[start:])))
        self.seen = before | keys
        if self.backend is not None:
            self.backend.rearm(())
        self._add_late(keys)

    def _add_late(self, keys):
        known = self.late_known
        for key in keys:
            if key not in known:
                known.add(key)
                self.late.append(key)

    def refer(self, module_file, module):
        """The project files `module` (a test module, collected) refers to in its names."""
        refs = self.refs.setdefault(module_file, set())
        for value in list(vars(module).values()):
            name = value.__name__ if isinstance(value, type(os)) \
                else getattr(value, "__module__", None)
            other = sys.modules.get(name) if isinstance(name, str) else None
            path = getattr(other, "__file__", None)
            rel = relpath(path) if isinstance(path, str) else None
            if rel is not None:
                refs.add(rel)

    def note_unseen_modules(self):
        """The project's modules imported without their code being seen (before recording
        started; on 3.11, by a loader that did not rewrite them) count as whole files:
        what their top level ran is not known."""
        modules = list(sys.modules.values())
        if len(modules) < self.modules_checked:
            self.modules_checked = 0
        for module in modules[self.modules_checked:]:
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path.endswith(".py"):
                rel = relpath(path)
                if rel is not None and rel not in self.code_files:
                    self.seen.add(("", rel))
        self.modules_checked = len(modules)

    def end_early_part(self, module_file=None, test_module=False):
        """What ran so far belongs before the tests (called when a file's collection ends).
        `test_module`: the file is a test module, whose own top level counts for its own
        tests (and those of modules referring to it) only; a conftest, a package's
        `__init__` or a module collected for its doctests counts for every test."""
        self.note_unseen_modules()
        if module_file is not None:
            self.see_source(module_file)
        for key in self.take():
            if key not in self.early_known:
                self.early_known.add(key)
                self.early.append(key)
        if module_file is not None and test_module:
            self.test_files.add(module_file)


R = Recorder()


class Caches:
    """The project's memoized functions (see the module's docstring): each with its block,
    what ran in the tests in which it computed a value, whether it computed one before the
    tests, and its (hits, misses) when the last test ended (or collection did)."""

    def __init__(self):
        self.wrappers = []
        self.keys = []
        self.computed = []
        self.before = []
        self.known = set()

    def find(self):
        """Looks for memoized functions in the project's modules and their classes."""
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not isinstance(path, str) or relpath(path) is None:
                continue
            for value in list(vars(module).values()):
                self._add(value)
                if isinstance(value, type) and value.__module__ == module.__name__:
                    for attr in list(vars(value).values()):
                        self._add(getattr(attr, "__func__", attr))
        self.before = self.counts()

    def _add(self, value):
        if not isinstance(value, functools._lru_cache_wrapper) or id(value) in self.known:
            return
        code = getattr(inspect.unwrap(value), "__code__", None)
        rel = relpath(code.co_filename) if code is not None else None
        if rel is None:
            return
        self.known.add(id(value))
        R.see_code(rel)
        self.wrappers.append(value)
        self.keys.append((rel, static_name(code.co_qualname)))
        self.computed.append(set())

    def counts(self):
        return list(map(_cache_info, self.wrappers))

    def settle(self, own):
        """At a test's end: what the test got from caches joins `own`; what it computed
        for them is kept. (A value computed before the tests depends on what ran then,
        which every test depends on.)"""
        now = self.counts()
        if now == self.before:  # (most tests: one comparison, no loop in Python)
            return
        for i, ((hits, misses, *_), (hits0, misses0, *_)) in enumerate(zip(now, self.before)):
            # (Counts that went down: the cache was cleared, and counted anew.)
            if misses != misses0 and misses > 0:
                self.computed[i] |= own
            if hits != hits0 and hits > 0:
                own.add(self.keys[i])
                own |= self.computed[i]
        self.before = now


C = Caches()
_cache_info = functools._lru_cache_wrapper.cache_info


class Monitoring:
    """Python 3.12+: the two sys.monitoring tools."""

    def __init__(self, recorder):
        mon = sys.monitoring
        self.mon = mon
        self.events = mon.events.PY_START | mon.events.PY_RESUME
        self.recorder = recorder
        mon.use_tool_id(FIND, "mtest impact (find)")
        try:
            mon.use_tool_id(WATCH, "mtest impact (watch)")
        except ValueError:
            mon.free_tool_id(FIND)
            raise
        disable = mon.DISABLE
        set_local = mon.set_local_events
        code_key = recorder.code_key
        line_event = mon.events.LINE
        # Before the tests, every line of the project's code raises one LINE event (then
        # disabled), from its code object's first start on.
        self.lined = []  # the code objects whose lines are watched
        self.lines = []  # (code object, line) that ran
        lined, lines = self.lined, self.lines

        # The project's code is watched from the take after its first start on; once it
        # ran, it is not watched until the next take (see rearm).
        def find(code, offset):
            if id(code) not in recorder.keys and code_key(code) is not None:
                if recorder.early_lines is None:
                    lined.append(code)
                    set_local(FIND, code, line_event)
                elif code.co_name == "<module>":
                    imports(code)
                recorder.ran.append(code)
            return disable

        # A module imported in a test: its top level's end ends the import.
        returned = mon.events.PY_RETURN
        self.imported = None  # the top level of the module being imported

        def imports(code):
            """A module's top level starts: an import in a test begins (True), unless
            it is before the tests or within another."""
            if not recorder.import_begins():
                return False
            self.imported = code
            set_local(WATCH, code, returned)
            return True

        def module_returned(code, offset, value):
            if code is self.imported:
                self.imported = None
                recorder.import_ends()
            set_local(WATCH, code, 0)
        mon.register_callback(WATCH, returned, module_returned)

        def line(code, number):
            lines.append((code, number))
            return disable
        mon.register_callback(FIND, line_event, line)

        def watch(code, offset):
            # (A module's top level again, the same code: exec, runpy.)
            if code.co_name != "<module>" or not imports(code):
                set_local(WATCH, code, 0)
            recorder.ran.append(code)
        for event in (mon.events.PY_START, mon.events.PY_RESUME):
            mon.register_callback(FIND, event, find)
            mon.register_callback(WATCH, event, watch)
        mon.set_events(FIND, self.events)

    def lines_before_tests(self):
        """The tests begin: the lines that ran so far, {file: set of lines}; no more LINE
        events."""
        set_local = self.mon.set_local_events
        for code in self.lined:
            set_local(FIND, code, 0)
        by_file = {}
        keys = self.recorder.keys
        for code, number in self.lines:
            key = keys.get(id(code))
            if key is not None and number is not None:
                by_file.setdefault(key[0], set()).add(number)
        self.lined.clear()
        self.lines.clear()
        return by_file

    def rearm(self, ran):
        """The code that ran since the last take is watched again (first seen: from now on)."""
        set_local = self.mon.set_local_events
        events = self.events
        for code in ran:
            set_local(WATCH, code, events)


def start(environ):
    """Starts recording unless `MTEST_IMPACT` says "0" (or is not set by mtest)."""
    if environ.get("MTEST_IMPACT") != "1" or R.on:
        return
    try:
        if sys.version_info >= (3, 12):
            R.backend = Monitoring(R)
        else:
            import mtest_rewrite

            R.backend = mtest_rewrite.Rewriting(R)
    except Exception as e:  # a tool id taken (coverage, a profiler): record nothing
        R.why_not = "%s: %s" % (type(e).__name__, e)
        return
    sys.addaudithook(_on_audit)
    R.on = True
    R.note_unseen_modules()


def _on_audit(event, args):
    """A project file opened for reading is a dependency of what is running. (An audit hook
    cannot be removed: once recording stops it only looks at a flag.)"""
    if event != "open" or not R.on or _quiet:
        return
    path, mode, flags = args
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    elif not isinstance(path, str):
        return  # a file descriptor, a path-like already converted
    if mode is not None:
        if "r" not in mode and "+" not in mode:
            return
    elif flags is not None and flags & os.O_ACCMODE == os.O_WRONLY:
        return
    if path.endswith((".pyc", ".pyo")):
        return
    if path.endswith(".py") and sys._getframe(1).f_code.co_filename.startswith(
            "<frozen importlib"):
        return  # an import: the module's code is recorded as it runs (not runpy's read)
    rel = relpath(path)
    if rel is not None:
        R.seen.add(("", rel))


# --- a test's dependencies -----------------------------------------------------------

def begin_test():
    if R.on:
        R.take()  # between tests (pytest's own code, a previous teardown): nobody's
        # (an import then is in the late list: see import_begins)
        R.late_before = len(R.late)
        # (The caches' counts are not taken again: a value got or computed between tests
        # counts for the next one, which can only add to its dependencies.)


def find_caches():
    """At collection's end: the project's memoized functions."""
    if R.on:
        C.find()


def tests_begin():
    """At collection's end: the lines that ran before the tests are known (3.12+; none
    are on 3.11)."""
    if R.on and R.early_lines is None:
        lines = getattr(R.backend, "lines_before_tests", None)
        R.early_lines = lines() if lines is not None else {}


def fixture_begin():
    """Before a fixture wider than a function is set up: what ran so far is the test's."""
    return R.take() if R.on else None


def fixture_end(fixturedef, before):
    """After its set-up: what it ran is its own (kept for every test that uses it) and
    also the test's."""
    if not R.on or before is None:
        return
    ran = R.take()
    R.fixtures.setdefault(fixturedef, set()).update(ran)
    R.seen.update(before)
    R.seen.update(ran)


def note_requester(fixturedef):
    """A fixture that asks for others may change their values (add to
    `doctest_namespace`, register in a session object): its function is a dependency of
    every test that uses one of them, whether or not it runs in that test (it ran in an
    earlier one). Noted once per fixture definition."""
    if not R.on or fixturedef in R.requesting:
        return
    R.requesting.add(fixturedef)
    code = getattr(inspect.unwrap(getattr(fixturedef, "func", None) or (lambda: None)),
                   "__code__", None)
    rel = relpath(code.co_filename) if code is not None else None
    if rel is None or not fixturedef.argnames:
        return
    R.see_code(rel)
    key = (rel, static_name(code.co_qualname))
    for name in fixturedef.argnames:
        R.requesters.setdefault(name, set()).add(key)


def end_test(item, fixturedefs):
    """The test's own dependencies (what it ran, with its fixtures'), its module's file,
    and how much of the late list it depends on (it depends on all of the early list);
    None when recording is off."""
    if not R.on:
        return None
    own = R.take()
    for fixturedef in fixturedefs:
        ran = R.fixtures.get(fixturedef)
        if ran:
            own |= ran
        if getattr(fixturedef, "scope", "function") != "function":
            own |= R.requesters.get(fixturedef.argname, set())
    doctest = _doctest_of(item)
    if doctest is not None:
        own |= doctest
    if C.wrappers:
        C.settle(own)
    late = R.late_before  # (what this test imported is its own)
    return own, _module_file(item), late


def _doctest_of(item):
    """A doctest's own text: the block whose docstring holds it (`<module>` for a module's
    docstring and its `__test__`), or the text file -- the test runs none of that block's
    code (unless an example calls it), yet its examples are there. (Every block of its
    file when the block is not known.)"""
    dtest = getattr(item, "dtest", None)
    filename = getattr(dtest, "filename", None)
    rel = relpath(filename) if isinstance(filename, str) else None
    if rel is None:
        return None
    if not rel.endswith(".py"):
        return {("", rel)}
    name = getattr(dtest, "name", None)
    for module in _module_names(item, dtest, filename):
        if not isinstance(module, str) or not isinstance(name, str):
            continue
        if name == module:
            return {(rel, "<module>")}
        if name.startswith(module + "."):
            name = name[len(module) + 1:]
            return {(rel, "<module>" if name.startswith("__test__.") else name)}
    return _every_block(rel)


_all_blocks = {}


def _every_block(rel):
    """Every block of a project file (when it cannot be read or parsed: the file, as one
    opened)."""
    if rel not in _all_blocks:
        try:
            _all_blocks[rel] = {(rel, name) for name in block_sums(read(rel))
                                if ";" not in name}  # (not a literal's sum)
        except (OSError, SyntaxError, ValueError, RecursionError):
            _all_blocks[rel] = {("", rel)}
    return _all_blocks[rel]


def _module_names(item, dtest, filename):
    """The names of the module a doctest comes from: its collector's module, the doctest's
    namespace's `__name__` (doctest clears it when the test passed), the modules of that
    file."""
    parent = getattr(item, "parent", None)
    module = getattr(parent, "__dict__", {}).get("_obj")
    yield getattr(module, "__name__", None)
    yield (getattr(dtest, "globs", None) or {}).get("__name__")
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == filename:
            yield module.__name__


def _module_file(item):
    try:
        return relpath(str(item.path))
    except Exception:
        return None


class Declarations:
    """Numbers for what one event file mentions: sources, blocks and dependency sets, each
    declared by an event before its first use (every chunk's event file anew). `emit`
    takes an event already encoded (a test can declare a set and a block of its own: they
    are written as text, without an encoder's work per event)."""

    def __init__(self):
        self.sources = {}
        self.blocks = {}
        self.sets = {}  # None for a set that mentions a file that could not be read
        self.numbered = 0
        self.bases = {}  # test module -> the number of its set of the early list
        self.lates = {}  # (how much of the late list, test module) -> its set's number

    def of(self, deps, emit):
        """The numbers of the sets a test depends on, declaring what is new with `emit`;
        None when a file it depends on could not be read."""
        own, module, late = deps
        numbers = [self._set(frozenset(own), emit)]
        if R.early:
            if module not in self.bases:
                self.bases[module] = self._set(R.early_of(module), emit, before=True)
            numbers.append(self.bases[module])
        if late:
            if (late, module) not in self.lates:
                self.lates[late, module] = self._set(R.late_of(late, module), emit)
            numbers.append(self.lates[late, module])
        return None if None in numbers else numbers

    def _set(self, keys, emit, before=False):
        """`before`: the set of what ran before the tests."""
        cache = (keys, True) if before else keys  # apart from a test's own set of the same keys
        if cache in self.sets:
            return self.sets[cache]
        blocks, files = [], []
        for key in keys:
            rel, name = key
            if not rel:  # a file opened
                if name not in R.code_files:
                    files.append(self._source(name, emit))
            else:
                blocks.append(self._block(key, emit))
        if None in blocks or None in files:
            self.sets[cache] = None
            return None
        number = self.sets[cache] = self.numbered
        self.numbered += 1
        emit('{"e":"deps","n":%d,"blocks":[%s],"files":[%s]%s}' % (
            number, ",".join(map(str, sorted(blocks))), ",".join(map(str, sorted(files))),
            ',"before":true' if before else ""))
        return number

    def _source(self, rel, emit):
        number = self.sources.get(rel)
        if number is not None:
            return number
        R.see_source(rel)
        checksum = R.sources.get(rel)
        if checksum is None:
            return None
        number = self.sources[rel] = len(self.sources)
        lines = (R.early_lines or {}).get(rel)
        emit('{"e":"source","n":%d,"path":%s,"sum":%s%s}' % (
            number, _text(rel), _text(checksum),
            ',"early":[%s]' % ",".join(map(str, sorted(lines))) if lines else ""))
        return number

    def _block(self, key, emit):
        number = self.blocks.get(key)
        if number is not None:
            return number
        source = self._source(key[0], emit)
        if source is None:
            return None
        number = self.blocks[key] = len(self.blocks)
        emit('{"e":"block","n":%d,"source":%d,"name":%s}' % (number, source, _text(key[1])))
        return number


_text = json.JSONEncoder(ensure_ascii=False).encode  # a str as JSON


# --- the check: what a file's blocks are now ---------------------------------------------

# pytest's and mtest's configuration files: a change in one changes the environment.
CONFIG_FILES = ("pyproject.toml", "pytest.ini", ".pytest.ini", "setup.cfg", "tox.ini")


# What a record holds and means: a record made by an mtest that recorded otherwise (one
# that missed what a later change reaches) is not to be trusted; bumped with such a change.
RECORDING = "3: late list, doctests, literals; a file runpy runs (3.11)"


def environment(config):
    """The environment's fingerprint: the interpreter, the installed distributions, the
    configuration files and `config` (mtest's account of its own options and pytest's
    arguments), and how mtest records. A test recorded in another environment may behave
    otherwise."""
    digest = hashlib.blake2b(digest_size=12)
    dists = distributions()
    parts = [RECORDING, sys.version, sys.executable, config] + dists
    parts += ["%s=%s" % (name, read_sum(name)) for name in CONFIG_FILES]
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def distributions():
    """The installed distributions, as the names of their metadata on `sys.path`
    (`NAME-VERSION.dist-info`, `.egg-info`, an `.egg` on the path itself): what
    `importlib.metadata` finds, without importing it and parsing every distribution's
    METADATA (most of this helper's time). An install, an upgrade or a removal changes a
    name; a directory that cannot be listed is named as such."""
    found = []
    for entry in sys.path:
        if entry.endswith(".egg"):
            found.append(entry)
            continue
        try:
            names = os.listdir(entry or ".")
        except FileNotFoundError:
            continue
        except OSError as e:  # never assumed unchanged
            found.append("unreadable %s: %s" % (entry, type(e).__name__))
            continue
        found.extend(os.path.join(entry, n) for n in names
                     if n.endswith((".dist-info", ".egg-info", ".egg-link")))
    return sorted(found)


def check(files, early=None):
    """{path: [checksums recorded]} in, {path: {"sum": now, "blocks": {name: checksum}}}
    out for every path: "sum" is "" for a file gone, None for one that cannot be read;
    "blocks" is there when the file differs from a version recorded and is Python that
    parses. `early`, {path: {checksum: {block: holes}}} (see early_sums): for such a file,
    "early" is {checksum: {block: its early sum now, at those holes}}."""
    answer = {}
    for rel, recorded in files.items():
        now = read_sum(rel)
        entry = answer[rel] = {"sum": now}
        if now and any(r != now for r in recorded) and rel.endswith(".py"):
            try:
                data = read(rel)
                entry["blocks"] = block_sums(data)
                then = (early or {}).get(rel)
                if then:
                    entry["early"] = {checksum: early_sums_now(data, holes)
                                      for checksum, holes in then.items()}
            except (OSError, SyntaxError, ValueError, RecursionError):
                entry.pop("early", None)
    return answer


def sums(files):
    """{path: checksum recorded} in, {path: {name: checksum}} out for the files that are
    still as recorded ({} for a data file); a file changed since, or Python that does not
    parse, is left out (its blocks are unknown)."""
    answer = {}
    for rel, recorded in files.items():
        try:
            data = read(rel)
            if file_sum(data) == recorded:
                answer[rel] = block_sums(data) if rel.endswith(".py") else {}
        except (OSError, SyntaxError, ValueError, RecursionError):
            pass
    return answer


def early_of(versions):
    """{path: [[checksum, lines that ran before the tests], ...]} in, {path: {checksum:
    {block: [holes, early sum]}}} out, for the version each file is at now (see
    early_sums)."""
    answer = {}
    for rel, asked in versions.items():
        try:
            data = read(rel)
            now = file_sum(data)
            for checksum, lines in asked:
                if checksum == now:
                    answer.setdefault(rel, {})[checksum] = early_sums(data, set(lines))
        except (OSError, SyntaxError, ValueError, RecursionError):
            pass
    return answer


def since(files):
    """{path: its text at a git revision, None where it did not exist} in, {path: the
    names of the blocks that differ now, None for the whole file} out."""
    answer = {}
    for rel, old in files.items():
        try:
            then = block_sums(old) if old is not None and rel.endswith(".py") else None
            now = block_sums(read(rel)) if then is not None else None
        except (OSError, SyntaxError, ValueError, RecursionError):
            then = now = None
        if then is None or now is None:
            answer[rel] = None
        else:
            answer[rel] = sorted(n for n in set(then) | set(now)
                                 if then.get(n) != now.get(n) and ";" not in n)
    return answer


def main(argv):
    """`python -m mtest_impact check|sums|since|readers` in the root: a JSON request on
    stdin, {"config": ..., "files": ..., "early": ..., "names": ... (readers), "env": false
    to leave the fingerprint out}; the answer on stdout, {"env": the environment's
    fingerprint, "files": ...} (and for `sums` asked about "early", the early sums: see
    early_of; for `readers`, see mtest_readers)."""
    import json

    command = argv[0] if argv else None
    if command not in ("check", "sums", "since", "readers"):
        sys.stderr.write("usage: python -m mtest_impact check|sums|since|readers"
                         " < request.json\n")
        return 2
    request = json.load(sys.stdin)
    files, early = request.get("files", {}), request.get("early")
    if command == "check":
        answer = {"files": check(files, early)}
    elif command == "readers":
        import mtest_readers

        answer = {"files": mtest_readers.readers(request.get("names", {}), files,
                                                 request.get("config", ""))}
    else:
        answer = {"files": sums(files) if command == "sums" else since(files)}
    if command == "sums" and early:
        answer["early"] = early_of(early)
    # The environment's fingerprint ("" when the asker knows it: `"env": false`).
    answer["env"] = environment(request.get("config", "")) if request.get("env", True) else ""
    json.dump(answer, sys.stdout, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
