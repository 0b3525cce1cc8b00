"""Who reads a module's constants, for `mtest --changed`: when all that changed in a
module's top level is the value of literals bound to names (`mtest_impact.literal_names`),
the tests the change can reach are those that ran a block reading one of those names --
provided the module's namespace is reached by those names only.

Why that is enough: evaluating a literal has no effect but the binding, so whoever
observes the new value loads it from the module's namespace. The project's code does so
by a name (`m.N`, `from m import N`, then `N` or `k.N` where `k` imported it: every name it
is bound to is followed), or by a string (`getattr(m, "N")`, `mock.patch("pkg.m.N")`, an
example in a docstring). What else could read it is code that gets hold of the module
object itself and reads its namespace as a whole (`vars`, `dir`, Django's settings,
Flask's `from_object`, pluggy): the change is judged by name only when no module holding
the value can get there --
- none is named in a string or a text file (an import by name: `import_module`,
  `sys.modules[...]`, `DJANGO_SETTINGS_MODULE`, an entry point), in an environment
  variable or in pytest's arguments;
- none is used in the project's code otherwise than to read a plain attribute of it
  (`m.N`; not `f(m)`, `m.__dict__`, `from m import *`), and none reads its own namespace
  (`globals()`, `vars()`, `dir()`, `sys.modules`);
- the project's code imports nothing by a name it computes (`import_module(name)`,
  `__import__`, `pkgutil.walk_packages`, `sys.modules` iterated).
Otherwise the module's top level counts as changed, as any other change does. What stays
unseen: code outside the project that finds the module by a name it computes itself.
"""

import ast
import doctest
import os
import re

import mtest_impact as impact

# What imports a module by a name computed at run time, or reads every module.
_DYNAMIC = frozenset({"import_module", "__import__", "walk_packages", "iter_modules",
                      "resolve_name", "run_path", "run_module", "module_from_spec",
                      "exec_module", "load_module", "get_objects", "reload"})
# What reads a namespace as a whole.
_WHOLE = frozenset({"globals", "locals", "vars", "dir", "__dict__", "modules", "getmembers"})
_TOKEN = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_NOT_MODULE = frozenset({"py", "pyi", "pyc", "pyx", "so", "pyd"})


def readers(changed, files, config=""):
    """{module path: [names whose literal changed]} and the project's recorded files in;
    {module path: [[path, block], ...] that read one of the names, or None when they
    cannot be told (see the module's docstring)} out."""
    project = _Project(files, config)
    return {rel: project.readers_of(rel, set(names)) for rel, names in changed.items()}


def base_name(rel):
    """The last part of the module's dotted name: `pkg/m.py` -> `m`, `pkg/__init__.py`
    -> `pkg`."""
    head, tail = os.path.split(rel[:-3])
    return os.path.basename(head) if tail == "__init__" else tail


def mentions(text, base, whole=True):
    """Whether `text` names the module whose dotted name ends in `base`: `pkg.base`,
    `base.N`, `.base`, or (`whole`) `base` alone -- not a file's name (`base.py`), not a
    part of a path."""
    if whole and text.strip().lstrip(".") == base:
        return True
    for match in _TOKEN.finditer(text):
        parts = match.group().split(".")
        if len(parts) < 2 and text[match.start() - 1:match.start()] != ".":
            continue
        if text[match.start() - 1:match.start()] in ("/", "\\"):
            continue
        for i, part in enumerate(parts):
            if part == base and (i + 1 == len(parts) or parts[i + 1] not in _NOT_MODULE):
                return True
    return False


def _outside_mentions(text, base):
    """`mentions` in a text file or an environment's value: a line's value (after `=` or
    `:`) counts alone too."""
    if mentions(text, base, whole=False):
        return True
    for line in text.splitlines():
        for value in (line, re.split(r"[=:]", line, maxsplit=1)[-1]):
            if value.strip().strip("\"',[]").lstrip(".") == base:
                return True
    return False


class _Project:
    def __init__(self, files, config):
        self.python = sorted(f for f in files if f.endswith(".py"))
        texts = [f for f in files if not f.endswith(".py")]
        texts += [f for f in impact.CONFIG_FILES if f not in texts]
        self.outside = [config] + list(os.environ.values())
        for rel in texts:
            try:
                self.outside.append(impact.read(rel).decode("utf-8", "replace"))
            except OSError:
                pass
        self.texts = {}
        self.files = {}
        self.dynamic = None

    def text(self, rel):
        if rel not in self.texts:
            try:
                self.texts[rel] = impact.read(rel).decode("utf-8", "surrogateescape")
            except OSError:
                self.texts[rel] = ""  # gone: nothing of it runs
        return self.texts[rel]

    def file(self, rel):
        """The file's facts, None when it does not parse."""
        if rel not in self.files:
            try:
                self.files[rel] = _File(self.text(rel))
            except (SyntaxError, ValueError, RecursionError):
                self.files[rel] = None
        return self.files[rel]

    def holding(self, words):
        """The Python files whose text holds one of `words` (as a word)."""
        pattern = _any_word(words)
        return [rel for rel in self.python if pattern.search(self.text(rel))]

    def imports_by_computed_name(self):
        """Whether the project's code imports a module by a name it computes."""
        if self.dynamic is None:
            self.dynamic = False
            for rel in self.holding(_DYNAMIC | {"modules"}):
                facts = self.file(rel)
                if facts is None or facts.dynamic:
                    self.dynamic = True
                    break
        return self.dynamic

    def readers_of(self, rel, names):
        if self.imports_by_computed_name():
            return None
        holders, names = self._holders(rel, names)
        if holders is None:
            return None
        for holder in holders:
            if not self._by_name_only(holder):
                return None
        found = set()
        named = _any_word(names)
        for other in self.holding(names):
            facts = self.file(other)
            if facts is None:
                return None
            found |= {(other, block) for block, name in facts.reads if name in names}
            found |= {(other, block) for block, text in facts.strings if named.search(text)}
        return sorted(map(list, found))

    def _holders(self, rel, names):
        """The modules whose namespace holds a changed value (`rel`, and every module whose
        top level imports one of `names` from one of them), and every name a value is
        bound to; (None, None) when one is imported with `*`."""
        holders, names = {rel}, set(names)
        grew = True
        while grew:
            grew = False
            bases = {base_name(h) for h in holders}
            for other in self.holding(bases):
                facts = self.file(other)
                if facts is None:
                    return None, None
                for level, module, alias, asname, top in facts.imports_from:
                    if not _refers(other, level, module, bases):
                        continue
                    if alias == "*":
                        return None, None
                    if alias not in names:
                        continue
                    for new, into in ((asname or alias, names), (other if top else None, holders)):
                        if new is not None and new not in into:
                            into.add(new)
                            grew = True
        return holders, names

    def _by_name_only(self, rel):
        """Whether module `rel` is reached by the names in it only (see the docstring)."""
        base = base_name(rel)
        own = self.file(rel)
        if own is None or own.whole:
            return False
        if any(_outside_mentions(text, base) for text in self.outside):
            return False
        for other in self.holding({base}):
            facts = self.file(other)
            if facts is None or not facts.reaches_by_name(base):
                return False
        return True


def _any_word(words):
    return re.compile(r"\b(?:%s)\b" % "|".join(map(re.escape, sorted(words))))


def _refers(path, level, module, bases):
    """Whether `from <level dots><module> import ...` in file `path` may name a module of
    `bases` (by its last part: more, never fewer)."""
    if module:
        return module.split(".")[-1] in bases
    if level:
        package = os.path.dirname(path)
        for _ in range(level - 1):
            package = os.path.dirname(package)
        return os.path.basename(package) in bases
    return False


class _File:
    """What a file's code does with names: per block (named as `mtest_impact` names
    blocks), the names it reads and its strings; its imports; whether it reads a namespace
    as a whole; whether it imports by a computed name. A docstring's examples are code of
    the block it documents; its prose reads nothing."""

    def __init__(self, text):
        self.reads = set()  # (block, name)
        self.strings = []  # (block, text)
        self.imports_from = []  # (level, module, name, asname, binds in a module's namespace)
        self.imports = []  # (name, asname)
        self.whole = False
        self.dynamic = False
        self.trees = []  # (tree, {node: its parent})
        self._add(ast.parse(text), "<module>", "")

    def _add(self, tree, block, scope):
        parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        self.trees.append((tree, parents))
        docs = {id(n.value) for n in ast.walk(tree)
                if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        stack = [(tree, (block,), scope, True)]
        while stack:
            node, blocks, scope, top = stack.pop()
            if _lazy_modules(node):
                continue  # PEP 810's declaration: it names modules, reads none
            for b in blocks:
                self._fact(node, b, top, docs)
            if isinstance(node, impact._DEFS):
                name = scope + node.name
                cls = isinstance(node, ast.ClassDef)
                inner = name + ("." if cls else ".<locals>.")
                for field, value in ast.iter_fields(node):
                    for part in value if isinstance(value, list) else [value]:
                        if not isinstance(part, ast.AST):
                            continue
                        if field == "body":
                            stack.append((part, (name,), inner, cls and top))
                        else:  # the head runs in the enclosing block: both
                            stack.append((part, blocks + (name,), scope, top))
            else:
                top = top and not isinstance(node, ast.Lambda)
                stack.extend((c, blocks, scope, top) for c in ast.iter_child_nodes(node))
        for node in ast.walk(tree):
            self._namespace_use(node, parents)

    def _fact(self, node, block, top, docs):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.reads.add((block, node.id))
        elif isinstance(node, ast.Attribute):
            self.reads.add((block, node.attr))
        elif isinstance(node, ast.ImportFrom):
            self.imports_from.extend((node.level, node.module, a.name, a.asname, top)
                                     for a in node.names)
        elif isinstance(node, ast.Import):
            self.imports.extend((a.name, a.asname) for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docs:
                self._examples(node.value, block)
            else:
                self.strings.append((block, node.value))

    def _namespace_use(self, node, parents):
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        else:
            return
        modules = name == "modules" and _is_sys(node)
        if name in _WHOLE and (name != "modules" or modules):
            self.whole = True
        if (name in _DYNAMIC or modules) and not _by_constant(node, parents):
            self.dynamic = True

    def _examples(self, text, block):
        if ">>>" not in text:
            return
        try:
            examples = doctest.DocTestParser().get_examples(text)
        except ValueError:
            self.strings.append((block, text))
            return
        for example in examples:
            try:
                tree = ast.parse(example.source)
            except (SyntaxError, ValueError):
                self.strings.append((block, example.source))
                continue
            self._add(tree, block, "")

    def reaches_by_name(self, base):
        """Whether every use of a module named `base` that this file imports reads a
        plain attribute of it, and no string of it names the module."""
        if any(mentions(text, base) for _, text in self.strings):
            return False
        chains = {}
        for name, asname in self.imports:
            parts = name.split(".")
            if asname and parts[-1] == base:
                chains[asname] = []
            elif not asname and base in parts:
                chains[parts[0]] = parts[1:parts.index(base) + 1]
        for _, _, alias, asname, _ in self.imports_from:
            if alias == base:
                chains[asname or alias] = []
        for tree, parents in self.trees if chains else ():
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and node.id in chains \
                        and isinstance(node.ctx, ast.Load) \
                        and not _plain_attribute(node, chains[node.id], parents):
                    return False
        return True


def _lazy_modules(node):
    return isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "__lazy_modules__" for t in node.targets)


def _plain_attribute(node, chain, parents):
    """Whether `node`, a name bound to a package, then `chain` of attributes to the module,
    is followed by a plain attribute read (or leads to another attribute of the package)."""
    for attr in chain + [None]:
        parent = parents.get(node)
        if not isinstance(parent, ast.Attribute) or parent.value is not node:
            return False
        if attr is None:
            return not (parent.attr.startswith("__") and parent.attr.endswith("__"))
        if parent.attr != attr:
            return True
        node = parent
    return True


def _is_sys(node):
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
        and node.value.id == "sys"


def _is_text(node):
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _by_constant(node, parents):
    """Whether an import function (or `sys.modules`) at `node` is given a constant name
    (which `mentions` then judges)."""
    parent = parents.get(node)
    if isinstance(parent, ast.Call) and parent.func is node:
        return bool(parent.args) and _is_text(parent.args[0])
    if not _is_sys(node):
        return False
    if isinstance(parent, ast.Subscript) and parent.value is node:
        return _is_text(parent.slice) or not isinstance(parent.ctx, ast.Load)  # a write
    if isinstance(parent, ast.Compare):
        return _is_text(parent.left)
    if isinstance(parent, ast.Attribute) and parent.attr in ("get", "pop", "setdefault"):
        call = parents.get(parent)
        return isinstance(call, ast.Call) and call.func is parent and bool(call.args) \
            and _is_text(call.args[0])
    if isinstance(parent, ast.Call) and parent.args and parent.args[0] is node:
        # monkeypatch.setitem(sys.modules, name, fake), mock.patch.dict(sys.modules, ...):
        # a module put in (the one replaced is kept, not read)
        func = parent.func
        return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) \
            in ("setitem", "delitem", "dict")
    return False
