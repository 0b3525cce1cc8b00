#!/usr/bin/env python3
"""Real projects' own suites, from their PyPI sdists: plain pytest and mtest on the same
checkout, every test's outcome compared.

    .venv/bin/python bench/realsuites.py [--only NAME,...] [--isolation fork,process] [-j 2]
                                         [--python 3.13]

Each suite is downloaded once into ~/.cache/mtest-bench/real/ with a venv of its own for
each Python (its test dependencies, pytest, pytest-timeout; `--python 3.12` or `3.13` takes
that version from pyenv), then copied to a temporary directory for each run. Plain pytest runs with a small plugin that writes every test's outcome (as pytest's
own reports decide it); mtest runs with the same interpreter and the project's own pytest
configuration, and its `run.jsonl` is read back. A test whose outcomes differ is listed; a
test that passed under mtest and did not under plain pytest is a **false green** and fails
the check (exit 1), as does any difference.

The suites are picked for what they exercise: packaging (64k parametrized tests), asgiref
(async tests), pytest-httpserver (a session-scoped server), semver (doctests in modules and
in `.rst` files, `--cov` and `--import-mode=importlib` in `addopts`), zipp (doctests,
importlib mode, a namespace package), anyio (async tests on asyncio and trio, hypothesis,
`filterwarnings = error`), networkx (7k tests, numpy and scipy, `--doctest-modules`, many
modules skipped at import), pytest's own `testing/` (pytester: pytest run inside pytest and
in subprocesses, faulthandler, the cache, capture).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MTEST = Path(os.environ.get("MTEST_BIN", REPO / "target" / "release" / "mtest"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtest-bench" / "real"
BASE = ["pytest>=8,<10", "pytest-timeout>=2.3,<3"]
# The interpreter the suites' venvs are made with, and the cache's name for it.
BASE_PYTHON = sys.executable
PY_TAG = "py%d.%d" % sys.version_info[:2]

# name: (sdist, extra to install the project with (or None), more requirements, pytest
# arguments for both runs)
SUITES = {
    "packaging": ("packaging==26.4", None, ["coverage[toml]>=7.2", "hypothesis", "pretend", "tomli_w"]),
    "asgiref": ("asgiref==3.8.1", "tests", []),
    "pytest-httpserver": ("pytest_httpserver==1.1.0", None, ["requests", "werkzeug", "toml"]),
    "semver": ("semver==3.1.2", None, ["pytest-cov", "packaging"]),
    "zipp": ("zipp==4.1.2", "test", []),
    "attrs": ("attrs==25.3.0", None, ["hypothesis", "pympler", "cloudpickle"]),
    "more-itertools": ("more-itertools==10.7.0", None, []),
    "dateutil": ("python-dateutil==2.9.0.post0", None, ["freezegun", "hypothesis", "pytest-cov"]),
    "anyio": ("anyio==4.16.0", "trio", ["blockbuster", "coverage[toml]", "exceptiongroup", "hypothesis",
                                       "psutil", "pytest-mock", "trustme", "truststore", "uvloop"]),
    "networkx": ("networkx==3.6.1", None, ["numpy", "scipy"], ["--doctest-modules", "networkx"]),
    "pytest": ("pytest==9.2.0", "dev", [], ["testing"]),
}

# Tests left out of the comparison, and why: they fail or pass by the machine's speed under
# plain pytest alone (fitted big-O curves of wall times).
UNSTABLE = {
    "zipp": ("tests/test_complexity.py::", "timing-based: each fails now and then under plain pytest alone"),
    "anyio": ("tests/test_sockets.py::", "network tests: ~200 fail in a sandbox without network, and "
              "plain pytest alone fails a different number of them from run to run (134, 135)"),
}

# Writes {node id: outcome} when the session ends, by the rules mtest's records follow
# (shared with tests/faithful.rs).
OUTCOME_PLUGIN = (REPO / "tests" / "faithful" / "outcomes_plugin.py").read_text()


def sh(cmd, **kw):
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def prepare(name):
    """The suite's source tree and its venv's python, made once and cached."""
    spec, extra, more = SUITES[name][:3]
    home = CACHE / name / PY_TAG
    venv = home / "venv"
    python = venv / "bin" / "python"
    stamp = home / "ready"
    if stamp.exists():
        return Path(stamp.read_text().strip()), python
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", spec, "-d", home])
    archive = next(p for p in home.iterdir() if p.name.endswith((".tar.gz", ".zip")))
    shutil.unpack_archive(archive, home)
    src = next(p for p in home.iterdir() if p.is_dir())
    sh([BASE_PYTHON, "-m", "venv", venv])
    target = f"{src}[{extra}]" if extra else str(src)
    sh([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *BASE, *more, "-e", target])
    stamp.write_text(str(src))
    return src, python


def args_of(name):
    return SUITES[name][3] if len(SUITES[name]) > 3 else []


def plain(src, python, work, args):
    plugin_dir = work / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "outcome_log.py").write_text(OUTCOME_PLUGIN)
    out = work / "plain.json"
    env = dict(os.environ, OUTCOMES_OUT=str(out))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    # A module that fails to import does not stop the rest, as under mtest.
    proc = subprocess.run([python, "-m", "pytest", "-p", "outcome_log",
                           "--continue-on-collection-errors", *args],
                          cwd=src, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if not out.exists():
        sys.exit(f"plain pytest wrote no outcomes (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return json.loads(out.read_text()), took, proc.stdout


def mtest(src, python, isolation, jobs, args):
    started = time.perf_counter()
    proc = subprocess.run([MTEST, "--python", python, "-j", str(jobs), "--isolation", isolation,
                           *(["--", *args] if args else [])],
                          cwd=src, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"mtest exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    outcomes = {}
    for line in (src / ".gates" / "last-run" / "run.jsonl").read_text().splitlines():
        r = json.loads(line)
        outcomes[r["test_id"]] = r["outcome"]  # the last attempt wins
    return outcomes, took, proc.stdout + proc.stderr


def same(plain_outcome, mtest_outcome):
    # pytest-timeout's failure is a hang to mtest.
    return plain_outcome == mtest_outcome or (plain_outcome, mtest_outcome) == ("failed", "hung")


def compare(name, want, got):
    prefix, _why = UNSTABLE.get(name, (None, None))
    if prefix:
        want = {t: o for t, o in want.items() if not t.startswith(prefix)}
        got = {t: o for t, o in got.items() if not t.startswith(prefix)}
    differ = [(t, want[t], got.get(t, "missing")) for t in want if not same(want[t], got.get(t, "missing"))]
    extra = [(t, "missing", got[t]) for t in got if t not in want]
    green = [d for d in differ if d[2] == "passed"]
    return differ + extra, green


def coverage_total(text):
    for line in text.splitlines():
        if line.startswith("TOTAL"):
            return line.split()[-1]
    return None


def default_interrupt():
    """Ctrl-C as a terminal gives it, whoever started this: a shell's background job
    inherits SIGINT ignored, and so would plain pytest and every test's subprocess (a
    test that raises SIGINT on itself then fails under plain pytest alone; mtest's
    workers have their own handling)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main():
    default_interrupt()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SUITES))
    parser.add_argument("--isolation", default="fork")
    parser.add_argument("-j", type=int, default=2)
    parser.add_argument("--python", default=None,
                        help="a Python version from pyenv for the suites' venvs (default: this one)")
    args = parser.parse_args()
    global BASE_PYTHON, PY_TAG
    if args.python:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
        found = sorted(Path(root, "versions").glob(f"{args.python}*/bin/python3"))
        if not found:
            sys.exit(f"no Python {args.python} in {root}/versions")
        BASE_PYTHON = str(found[-1])
        PY_TAG = "py" + args.python
    if not MTEST.is_file():
        sys.exit(f"{MTEST} is missing: run `cargo build --release` first")
    failed = False
    for name in args.only.split(","):
        src, python = prepare(name)
        for isolation in args.isolation.split(","):
            work = Path(tempfile.mkdtemp(prefix=f"mtest-real-{name}-"))
            try:
                root = work / "src"
                shutil.copytree(src, root, ignore=shutil.ignore_patterns(".gates", "__pycache__", ".pytest_cache"))
                want, t_plain, out_plain = plain(root, python, work, args_of(name))
                shutil.rmtree(root / ".gates", ignore_errors=True)
                shutil.rmtree(root / ".pytest_cache", ignore_errors=True)
                got, t_mtest, out_mtest = mtest(root, python, isolation, args.j, args_of(name))
                diffs, green = compare(name, want, got)
                counts = {}
                for o in want.values():
                    counts[o] = counts.get(o, 0) + 1
                summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
                print(f"{name} ({SUITES[name][0]}), mtest -j{args.j} {isolation}: {len(want)} tests ({summary}); "
                      f"plain {t_plain:.1f} s, mtest {t_mtest:.1f} s; {len(diffs)} difference(s), "
                      f"{len(green)} false green(s)")
                if name in UNSTABLE:
                    print(f"  left out: {UNSTABLE[name][0]}* ({UNSTABLE[name][1]})")
                cov = coverage_total(out_plain), coverage_total(out_mtest)
                if cov[0] or cov[1]:
                    print(f"  coverage TOTAL: plain {cov[0]}, mtest {cov[1]}")
                    if cov[0] != cov[1]:
                        failed = True
                for t, a, b in diffs[:20]:
                    print(f"  {t}: plain {a}, mtest {b}")
                if len(diffs) > 20:
                    print(f"  … and {len(diffs) - 20} more")
                failed |= bool(diffs)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
