#!/usr/bin/env python3
"""`mtest --changed` judged by mutation on real projects, beside pytest-testmon.

    .venv/bin/python bench/impact.py [--only packaging,semver,attrs] [--mutations 25]
                                     [--seed 1] [-j 2] [--start K] [--testmon-cap 900]

For each project (its PyPI sdist and venv, as bench/realsuites.py makes them; packaging
26.4's from bench/supervisor.py's cache), in a copy of its tree (its `src/` first on
PYTHONPATH, so the copy is what is imported):

1. A full `mtest` run records what each test depends on; `pytest --testmon` records its own
   `.testmondata`; plain `pytest` runs once for the full run's time.
2. N single-point mutations are drawn (seeded), spread over functions, methods, module-level
   code, class bodies and conftest fixtures: an operator flipped (`==`/`!=`, `<`/`>=`,
   `+`/`-`, `and`/`or`…), a constant changed, a statement deleted.
3. For each, from the recorded state each time: `mtest --changed` runs S (its time);
   `mtest --changed --verify` runs everything, giving F (the failing tests) and the tests
   of F that `--changed` left out (a miss: a false green of the selection); `pytest
   --testmon` runs its own selection (its time, and the tests of F it left out); a testmon
   run past `--testmon-cap` seconds is stopped (on packaging it took up to 22 minutes where
   mtest's full run takes one): its time shows as more than the cap, its misses unknown.

Prints one line a mutation and, per project: misses (target: none), the median of S's
time over the full plain pytest run's (target <= 0.2), and testmon's on the same mutations;
and the median of F's own share of the tests' time (from the `--verify` run's durations): a
floor no safe selection goes under, whatever its own costs -- when it is above 0.2, the
mutations themselves reach too much of the suite for the target; and the median time plain
`pytest --collect-only` takes on the files that hold S (`start`): what pytest's own start
and collection cost any tool that runs S with pytest, before it runs a test. Exit 1 when
`--changed` missed a failing test.
"""

import argparse
import ast
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realsuites  # noqa: E402

MTEST = realsuites.MTEST
PACKAGING = Path.home() / ".cache" / "mtest-bench"
TESTMON = "pytest-testmon>=2.2,<2.3"
KINDS = ("function", "method", "module", "class body", "fixture")


def project(name):
    """The project's tree and venv python (packaging: the supervisor bench's)."""
    if name == "packaging":
        venv = "packaging-venv" + ("-%d.%d" % sys.version_info[:2] if sys.version_info >= (3, 12)
                                   else "")
        src, python = PACKAGING / "packaging-26.4", PACKAGING / venv / "bin" / "python"
        if not python.exists():
            sys.exit("packaging's venv is missing: run bench/supervisor.py --only packaging once")
        return src, python
    return realsuites.prepare(name)


def ensure_testmon(python):
    if subprocess.run([python, "-c", "import testmon"], capture_output=True).returncode:
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        TESTMON], check=True)


# --- mutations -------------------------------------------------------------------------

FLIPS = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">", " is not ": " is ",
         " is ": " is not ", " not in ": " in ", " in ": " not in ", "+": "-", "-": "+",
         "*": "//", "and": "or", "or": "and"}


class Site:
    def __init__(self, path, kind, block, line, old, new, what):
        self.path, self.kind, self.block, self.line = path, kind, block, line
        self.old, self.new, self.what = old, new, what

    def __str__(self):
        return "%s:%d %s (%s %s)" % (self.path, self.line, self.what, self.kind, self.block)


def sites(root, rel):
    """Every single-line mutation of file `rel` this bench knows how to make."""
    text = (root / rel).read_text()
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    found = []

    def kind_of(stack):
        if not stack:
            return "module", "<module>"
        top = stack[-1]
        if isinstance(top, ast.ClassDef):
            return "class body", top.name
        fixture = any("fixture" in ast.unparse(d) for d in top.decorator_list)
        if rel.endswith("conftest.py") and fixture:
            return "fixture", top.name
        in_class = len(stack) > 1 and isinstance(stack[-2], ast.ClassDef)
        return ("method" if in_class else "function"), top.name

    def segment(node):
        return lines[node.lineno - 1][node.col_offset:node.end_col_offset]

    def add(stack, node, old_text, new_text, what):
        if node.lineno != node.end_lineno:
            return
        kind, block = kind_of(stack)
        line = lines[node.lineno - 1]
        if old_text not in line:
            return
        found.append(Site(rel, kind, block, node.lineno, line, line.replace(old_text, new_text, 1),
                          what))

    def visit(node, stack):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, stack + [child])
                continue
            deletable = (isinstance(child, ast.stmt) and child.lineno == child.end_lineno
                         and not isinstance(child, (ast.Import, ast.ImportFrom, ast.Pass,
                                                    ast.Global, ast.Nonlocal))
                         and not (isinstance(child, ast.Expr)
                                  and isinstance(child.value, ast.Constant)))
            if deletable:
                line = lines[child.lineno - 1]
                indent = line[:len(line) - len(line.lstrip())]
                kind, block = kind_of(stack)
                found.append(Site(rel, kind, block, child.lineno, line, indent + "pass\n",
                                  "statement deleted"))
            if isinstance(child, ast.Compare) and len(child.ops) == 1:
                between = lines[child.lineno - 1][child.left.end_col_offset:child.comparators[0].col_offset] \
                    if child.lineno == child.end_lineno else ""
                for old, new in FLIPS.items():
                    if old.strip() in ("is", "is not", "in", "not in"):
                        if re.fullmatch(r"\s*%s\s*" % re.escape(old.strip()), between):
                            add(stack, child, segment(child),
                                segment(child).replace(between, new, 1), "`%s` -> `%s`" % (old.strip(), new.strip()))
                            break
                    elif between.strip() == old:
                        add(stack, child, segment(child), segment(child).replace(between, " %s " % new, 1),
                            "`%s` -> `%s`" % (old, new))
                        break
            elif isinstance(child, ast.BinOp) and child.lineno == child.end_lineno:
                between = lines[child.lineno - 1][child.left.end_col_offset:child.right.col_offset]
                op = between.strip().strip("()").strip()
                if op in ("+", "-", "*"):
                    add(stack, child, segment(child), segment(child).replace(between, " %s " % FLIPS[op], 1),
                        "`%s` -> `%s`" % (op, FLIPS[op]))
            elif isinstance(child, ast.BoolOp) and child.lineno == child.end_lineno:
                between = lines[child.lineno - 1][child.values[0].end_col_offset:child.values[1].col_offset]
                op = between.strip()
                if op in ("and", "or"):
                    add(stack, child, segment(child), segment(child).replace(between, " %s " % FLIPS[op], 1),
                        "`%s` -> `%s`" % (op, FLIPS[op]))
            elif isinstance(child, ast.Constant) and child.lineno == child.end_lineno \
                    and not isinstance(node, ast.Expr):
                value = child.value
                if isinstance(value, bool):
                    new = repr(not value)
                elif isinstance(value, int):
                    new = repr(value + 1)
                elif isinstance(value, str) and 0 < len(value) < 40 and "\\" not in segment(child):
                    new = repr(value + "x")
                else:
                    new = None
                if new is not None:
                    add(stack, child, segment(child), new, "constant %s -> %s" % (segment(child), new))
            visit(child, stack)

    visit(tree, [])
    return [s for s in found if s.old != s.new and compiles(text, s)]


def compiles(text, site):
    lines = text.splitlines(keepends=True)
    lines[site.line - 1] = site.new
    try:
        ast.parse("".join(lines))
        return True
    except SyntaxError:
        return False


def draw(root, n, seed):
    """`n` mutations spread over the kinds, from the package's modules and the conftests,
    then the rest in a random order (spares for the ones that break the suite itself)."""
    files = [p.relative_to(root).as_posix() for p in (root / "src").rglob("*.py")]
    files += [p.relative_to(root).as_posix() for p in root.rglob("conftest.py")
              if "site-packages" not in str(p) and ".tox" not in p.parts]
    by_kind = {k: [] for k in KINDS}
    for rel in sorted(files):
        for site in sites(root, rel):
            by_kind[site.kind].append(site)
    rng = random.Random(seed)
    want = {"function": 0.3, "method": 0.3, "module": 0.15, "class body": 0.1, "fixture": 0.15}
    chosen = []
    for kind in KINDS:
        pool = by_kind[kind]
        rng.shuffle(pool)
        chosen += pool[:max(1, int(n * want[kind]))]
    chosen = chosen[:n]
    rest = [s for k in KINDS for s in by_kind[k] if s not in chosen]
    rng.shuffle(rest)
    return chosen + rest


def apply(root, site, undo=False):
    """Makes the mutation, or puts the file back as it was before it."""
    path = root / site.path
    if undo:
        path.write_text(site.before)
        return
    site.before = path.read_text()
    lines = site.before.splitlines(keepends=True)
    lines[site.line - 1] = site.new
    path.write_text("".join(lines))


# --- runs ------------------------------------------------------------------------------

def run(cmd, root, env, timeout=None):
    """(the finished process, or None when it ran past `timeout` seconds and was killed;
    the wall time)."""
    started = time.perf_counter()
    try:
        proc = subprocess.run([str(c) for c in cmd], cwd=root, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc = None
    return proc, time.perf_counter() - started


def mtest_run(cmd, root, env, durations=None):
    """An mtest run from a clean last-run/ (never an older run's records read back):
    (exit code, wall, its tests, the failing ones); `durations` (a dict) gets each test's
    time."""
    shutil.rmtree(root / ".gates" / "last-run", ignore_errors=True)
    proc, took = run(cmd, root, env)
    ids, failing = ran(root, durations) if proc.returncode in (0, 1) else (set(), set())
    return proc.returncode, took, ids, failing


def ran(root, durations=None):
    """The last mtest run's tests and the failing ones among them."""
    ids, failing = set(), set()
    log = root / ".gates" / "last-run" / "run.jsonl"
    for line in log.read_text().splitlines() if log.exists() else []:
        r = json.loads(line)
        ids.add(r["test_id"])
        if durations is not None:
            durations[r["test_id"]] = r.get("duration_s", 0.0)
        if r["outcome"] in ("failed", "error", "crashed", "hung"):
            failing.add(r["test_id"])
        else:
            failing.discard(r["test_id"])
    return ids, failing


def floor(durations, fails):
    """F's share of the tests' own time in the full run: what no safe selection can go
    under (it must run F), as a fraction."""
    total = sum(durations.values())
    return sum(durations.get(t, 0.0) for t in fails) / total if total else 0.0


def junit_cases(path):
    """The (classname, name) of every test case of a JUnit file pytest wrote."""
    import xml.etree.ElementTree as ET

    if not path.exists():
        return set()
    return {(c.get("classname", ""), c.get("name", "")) for c in ET.parse(path).iter("testcase")}


def as_case(nodeid):
    """A node id as pytest's JUnit names it (its mangle_test_address)."""
    names = nodeid.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    return ".".join(names[:-1]), names[-1]


def one_percent(root, mtest, plain, env, saved, reps=3):
    """A one-line change inside the project's function that about 1% of the tests reach
    (a `pass` added as its body's first line: its block changes, its behaviour does not):
    `mtest --changed` beside plain pytest's full run, taken in turn `reps` times."""
    stored = json.loads((root / ".gates" / "impact.json").read_text())
    sources, sets = stored["sources"], stored["sets"]
    reach = {}
    for _, (_, numbers) in stored["tests"].items():
        for s, name in sets[numbers[0]][0]:
            key = (sources[s][0], name)
            reach[key] = reach.get(key, 0) + 1
    target = 0.01 * len(stored["tests"])
    path, name = min((k for k in reach if k[0].startswith("src/") and "<" not in k[1]),
                     key=lambda k: abs(reach[k] - target))
    tree = ast.parse((root / path).read_text())
    parts, node = name.split("."), tree
    for part in parts:
        node = next(n for n in ast.iter_child_nodes(node)
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and n.name == part)
    first = node.body[0]
    lines = (root / path).read_text().splitlines(keepends=True)
    indent = lines[first.lineno - 1][:first.col_offset]
    site = Site(path, "function", name, first.lineno, lines[first.lineno - 1],
                indent + "pass\n" + lines[first.lineno - 1], "a `pass` added")
    apply(root, site)
    try:
        changed, full = [], []
        for _ in range(reps):
            saved.restore()
            code, took, ids, _ = mtest_run(mtest + ["--changed"], root, env)
            changed.append((took, len(ids), code))
            full.append(run(plain, root, env)[1])
    finally:
        apply(root, site, undo=True)
        saved.restore()
    c, f = statistics.median(t for t, _, _ in changed), statistics.median(full)
    print("  one-line change in %s: %s (reached by %d of %d tests, %.1f%%): mtest --changed ran %d "
          "test(s) in %.2f s (exit %d); plain pytest's full run %.2f s: %.3fx"
          % (path, name, reach[(path, name)], len(stored["tests"]),
             100 * reach[(path, name)] / len(stored["tests"]), changed[0][1], c, changed[0][2], f,
             c / f))


class Saved:
    """Files put back before each mutation's runs: mtest's records, testmon's data."""

    def __init__(self, root, names):
        self.root, self.names = root, names
        self.keep = Path(tempfile.mkdtemp(prefix="mtest-impact-saved-"))
        for name in names:
            if (root / name).exists():
                shutil.copy2(root / name, self.keep / name.replace("/", "_"))

    def restore(self):
        for name in self.names:
            saved = self.keep / name.replace("/", "_")
            if saved.exists():
                (self.root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(saved, self.root / name)


def bench(name, n, seed, jobs, start=0, testmon_cap=None):
    src, python = project(name)
    ensure_testmon(python)
    work = Path(tempfile.mkdtemp(prefix="mtest-impact-%s-" % name))
    root = work / src.name
    shutil.copytree(src, root, ignore=shutil.ignore_patterns(".gates", ".testmondata*", "__pycache__",
                                                             ".pytest_cache"))
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    args = realsuites.args_of(name)
    mtest = [MTEST, "--python", python, "-j", jobs]
    extra = ["--", *args] if args else []
    code, _, _, failing_before = mtest_run(mtest + extra, root, env)
    if code not in (0, 1):
        sys.exit("%s: the recording run exited %d" % (name, code))
    _, plain_s = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], root, env)
    # testmon refuses pytest-cov's branch coverage (semver's addopts): pytest-cov is off
    # for its runs.
    has_cov = not subprocess.run([python, "-c", "import pytest_cov"], capture_output=True).returncode
    # testmon 2.2 reads `config.rootdir`, which packaging's addopts switch off
    # (`-p no:legacypath`): it is switched on again for its runs.
    testmon = [python, "-m", "pytest", "-q", "--testmon", "-p", "legacypath",
               "-W", "ignore::pytest.PytestAssertRewriteWarning",
               *(["--no-cov"] if has_cov else [])]
    proc, testmon_full = run(testmon + args, root, env)
    if proc.returncode not in (0, 1):
        sys.exit("%s: testmon's recording run exited %d:\n%s" % (name, proc.returncode,
                                                               proc.stdout[-2000:]))
    saved = Saved(root, [".gates/impact.json", ".gates/durations.json", ".testmondata"])
    size = (root / ".gates" / "impact.json").stat().st_size / 1e6
    print("%s: full plain pytest %.1f s, testmon's recording run %.1f s; .gates/impact.json %.1f MB; "
          "%d test(s) failing before any mutation" % (name, plain_s, testmon_full, size, len(failing_before)))
    if name == "packaging":
        one_percent(root, mtest, [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                    env, saved)
    rows, broken = [], []
    for site in draw(root, n, seed):
        if len(rows) == n:
            break
        if start:  # measured by an earlier, interrupted run of the same draw
            start -= 1
            rows.append(None)
            print("  %-70s (measured before)" % str(site)[:70], flush=True)
            continue
        apply(root, site)
        try:
            saved.restore()
            changed_exit, changed_s, selected, _ = mtest_run(mtest + ["--changed"] + extra,
                                                             root, env)
            # pytest's own start for S: collecting the files that hold it, running nothing.
            files = sorted({t.split("::")[0] for t in selected})
            _, start_s = run([python, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                              *args, *files], root, env) if files else (None, 0.0)
            saved.restore()
            durations = {}
            verify_exit, _, _, failing = mtest_run(mtest + ["--changed", "--verify"] + extra,
                                                   root, env, durations)
            fails = failing - failing_before
            missed = sorted(fails - selected)
            saved.restore()
            junit = work / "testmon.xml"
            junit.unlink(missing_ok=True)
            proc, testmon_s = run(testmon + ["--junitxml", junit, *args], root, env,
                                  timeout=testmon_cap)
            if proc is None:  # stopped at the cap: its misses are not known
                tm_missed = None
            else:
                tm_ran = junit_cases(junit)
                tm_missed = sorted(f for f in fails if as_case(f) not in tm_ran)
                if proc.returncode not in (0, 1, 5):  # 5: it deselected every test
                    tm_missed = ["testmon exited %d" % proc.returncode]
        finally:
            apply(root, site, undo=True)
        if verify_exit not in (0, 1):
            # The mutation breaks the suite itself (a conftest that no longer imports):
            # every run fails loudly, mtest's with its own exit code; nothing to miss.
            print("  %-70s the suite does not run (exit %d); mtest --changed exits %d"
                  % (str(site)[:70], verify_exit, changed_exit), flush=True)
            broken.append(site)
            continue
        share = floor(durations, fails)
        rows.append((site, len(selected), changed_s, len(fails), missed, testmon_s, tm_missed,
                     share, start_s))
        print("  %-70s F=%-5d (%4.0f%% of the time) S=%-6d %5.1fs (start %4.1fs) miss=%d | testmon %s"
              % (str(site)[:70], len(fails), 100 * share, len(selected), changed_s, start_s, len(missed),
                 "%5.1fs miss=%d" % (testmon_s, len(tm_missed)) if tm_missed is not None
                 else ">%.0fs (stopped at the cap; misses not known)" % testmon_cap),
              flush=True)
        for m in missed:
            print("      MISSED by --changed: %s" % m)
    skipped = rows.count(None)
    rows = [r for r in rows if r is not None]
    if not rows:
        return 0
    ratio = statistics.median(r[2] for r in rows) / plain_s
    tm_ratio = statistics.median(r[5] for r in rows) / plain_s
    misses = sum(len(r[4]) for r in rows)
    tm_misses = sum(len(r[6]) for r in rows if r[6] is not None)
    stopped = sum(r[6] is None for r in rows)
    print("%s: %d mutations (and %d that break the suite itself%s); mtest --changed: %d missed "
          "failing test(s), median time %.2fx the full plain run; testmon: %d missed, median %.2fx%s; "
          "the failing tests' own share of the tests' time (no safe selection runs less): median %.2f; "
          "pytest's start for S (collecting its files, running nothing): median %.2fx"
          % (name, len(rows), len(broken), ", %d measured before" % skipped if skipped else "",
             misses, ratio, tm_misses, tm_ratio,
             " (%d of its runs stopped at the cap: their time counts as the cap, their misses "
             "as none)" % stopped if stopped else "", statistics.median(r[7] for r in rows),
             statistics.median(r[8] for r in rows) / plain_s))
    shutil.rmtree(work, ignore_errors=True)
    return misses


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="packaging,semver,attrs")
    parser.add_argument("--mutations", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-j", default="2")
    parser.add_argument("--start", type=int, default=0,
                        help="skip the first START mutations of the draw (measured by an "
                             "interrupted run: one project)")
    parser.add_argument("--testmon-cap", type=float, default=900,
                        help="seconds after which a testmon run is stopped (its time shown "
                             "as more than this; 0: no cap)")
    opts = parser.parse_args()
    realsuites.default_interrupt()
    misses = sum(bench(name, opts.mutations, opts.seed, opts.j, opts.start,
                       opts.testmon_cap or None)
                 for name in opts.only.split(","))
    sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
