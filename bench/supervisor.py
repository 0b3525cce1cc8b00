#!/usr/bin/env python3
"""mtest beside plain pytest and `pytest -n 2` (xdist), on the same suites, in one run;
prints wall times, ratios to plain pytest, and the targets of the executor issue.

    .venv/bin/python bench/supervisor.py [--reps 3] [--only NAME,...] [--no-download]

Suites:
  trivial    5,000 trivial tests in 100 files (warm: one untimed mtest run first)
  cpu        24 CPU-bound tests (~0.4 s each) in 6 files (warm)
  big        100,000 trivial tests in 1,000 files: cold and warm, with mtest's own peak
             RSS and CPU share (sampled from /proc while it runs)
  packaging  packaging 26.4's own suite from its PyPI sdist (64k tests), in a venv of its
             own: cold (no .gates/) and warm
  crash      2,000 trivial tests with 5 segfaults beside the clean twin: what a crash adds,
             against a one-test pytest run
  events     the event channel's own cost per test (plain pytest with and without it)
  impact     recording each test's dependencies (`--changed`) on vs off (`impact = false`),
             mtest -j2 fork, on trivial, cpu and packaging, with this Python and with 3.12
             (`--python312 PATH`, else pyenv's; packaging gets a 3.12 venv of its own)

mtest runs in both isolation modes: fork (the default on Linux) and process. The generated
suites carry `timeout = 30`, so plain pytest pays pytest-timeout's per-test timer as mtest
does. Each figure is the median of --reps runs, the commands of a suite taken in turn, so
drift in this machine's speed falls on every command alike.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MTEST = Path(os.environ.get("MTEST_BIN", REPO / "target" / "release" / "mtest"))
PYTHON = sys.executable
CONFIG = "[tool.pytest.ini_options]\ntimeout = 30\n"
PACKAGING = "packaging==26.4"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtest-bench"


def write_suite(root, files, config=CONFIG):
    if root.exists():
        shutil.rmtree(root)
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text(config)
    for name, text in files.items():
        (root / "tests" / name).write_text(text)


def trivial(root, n_files=100, per_file=50, segfaults=()):
    files = {}
    for f in range(n_files):
        lines = ["import ctypes\n"]
        for t in range(per_file):
            body = "ctypes.string_at(0)" if (f, t) in segfaults else "pass"
            lines.append(f"def test_{t}():\n    {body}\n")
        files[f"test_f{f:04}.py"] = "".join(lines)
    write_suite(root, files)


def cpu(root, n_files=6, per_file=4, loops=7_000_000):
    body = f"    total = 0\n    for i in range({loops}):\n        total += i * i\n    assert total > 0\n"
    files = {
        f"test_cpu{f}.py": "".join(f"def test_{t}():\n{body}" for t in range(per_file)) for f in range(n_files)
    }
    write_suite(root, files)


class Sample:
    """Wall time, and for mtest its own CPU seconds and peak RSS (children excluded)."""

    def __init__(self, wall, cpu=None, rss_mb=None):
        self.wall, self.cpu, self.rss_mb = wall, cpu, rss_mb


def run(cmd, cwd, ok=(0, 1), sample_self=False, env=None):
    tick = os.sysconf("SC_CLK_TCK")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    cpu = rss = None
    if sample_self:
        while proc.poll() is None:
            try:
                stat = Path(f"/proc/{proc.pid}/stat").read_text()
                fields = stat[stat.rfind(")") + 2 :].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        rss = int(line.split()[1]) / 1024
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.02)
    _, err = proc.communicate()
    took = time.perf_counter() - started
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{err.decode()[-3000:]}")
    return Sample(took, cpu, rss)


def interleaved(cmds, cwd, reps):
    """label -> (cmd, warm, cold, env): medians of wall (and mtest's CPU/RSS)."""
    samples = {label: [] for label in cmds}
    for label, (cmd, warm, cold, env) in cmds.items():
        if warm:
            run(cmd, cwd, env=env)
    for _ in range(reps):
        for label, (cmd, _warm, cold, env) in cmds.items():
            if cold:
                shutil.rmtree(Path(cwd) / ".gates", ignore_errors=True)
            samples[label].append(run(cmd, cwd, sample_self=str(cmd[0]) == str(MTEST), env=env))
    out = {}
    for label, s in samples.items():
        walls = [x.wall for x in s]
        cpus = [x.cpu for x in s if x.cpu is not None]
        rss = [x.rss_mb for x in s if x.rss_mb is not None]
        out[label] = Sample(
            statistics.median(walls),
            statistics.median(cpus) if cpus else None,
            max(rss) if rss else None,
        )
    return out


def show(name, row):
    base = row["plain pytest"].wall
    print(f"\n{name}")
    for label, s in row.items():
        extra = ""
        if s.cpu is not None and s.rss_mb is not None:
            extra = f"   mtest itself: CPU {100 * s.cpu / s.wall:4.1f}% of wall, peak RSS {s.rss_mb:5.0f} MB"
        print(f"  {label:<24} {s.wall:7.2f} s   {s.wall / base:5.2f}x{extra}")
    return row


def commands(python, xdist, modes, jobs, warm=True, cold=False, env=None):
    pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmds = {"plain pytest": (pytest, False, False, env)}
    if xdist:
        cmds["pytest -n 2"] = (pytest + ["-n", "2"], False, False, env)
    for mode in modes:
        for j in jobs:
            for temp in (["cold"] if cold else []) + (["warm"] if warm else []):
                label = f"mtest -j{j} {mode}" + (f" {temp}" if cold else "")
                cmd = [str(MTEST), "--python", python, "-j", j, "--isolation", mode]
                cmds[label] = (cmd, temp == "warm", temp == "cold", env)
    return cmds


def has(python, module):
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def packaging_suite(work):
    """packaging's sdist and a venv with its test dependencies, cached between runs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / "packaging-venv"
    src = CACHE / "packaging-26.4"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "pytest>=8,<10", "pytest-timeout>=2.3,<3",
             "pytest-xdist>=3,<4", "coverage[toml]>=7.2", "hypothesis", "pretend", "tomli_w"],
            check=True,
        )
    if not src.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        PACKAGING, "-d", str(CACHE)], check=True)
        subprocess.run(["tar", "xzf", str(CACHE / "packaging-26.4.tar.gz"), "-C", str(CACHE)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(src)], check=True)
    root = work / "packaging"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns(".gates", "__pycache__"))
    return root, str(venv / "bin" / "python")


def packaging_venv_312(python312):
    """A 3.12 venv with packaging's test dependencies (the copy's src/ is put first on
    PYTHONPATH by the caller)."""
    venv = CACHE / "packaging-venv-3.12"
    if not (venv / "bin" / "python").exists():
        subprocess.run([python312, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "pytest>=8,<10", "pytest-timeout>=2.3,<3",
             "coverage[toml]>=7.2", "hypothesis", "pretend", "tomli_w"],
            check=True,
        )
    return str(venv / "bin" / "python")


def find_python312(given):
    if given:
        return given
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    found = sorted(Path(root).glob("versions/3.12.*/bin/python3.12")) if root else []
    return str(found[-1]) if found else None


def impact_cost(work, reps, python312):
    """mtest -j2 fork with recording on and off, side by side (each its own root: off is
    `[tool.mtest] impact = false`), per suite and Python. Returns the checks."""
    checks = []
    pythons = [("3.11" if sys.version_info[:2] == (3, 11) else "this", PYTHON, None)]
    if python312:
        pythons.append(("3.12", python312, packaging_venv_312(python312)))
    for tag, python, pk312 in pythons:
        suites = {"trivial": (lambda r: trivial(r)), "cpu": (lambda r: cpu(r)), "packaging": None}
        for name, make in suites.items():
            roots, env = {}, None
            for state in ("on", "off"):
                root = work / f"impact-{tag}-{name}-{state}"
                if make is not None:
                    make(root)
                else:
                    src, pk = packaging_suite(work / f"pk-{tag}-{state}")
                    shutil.move(str(src), str(root))
                    suite_python = pk312 or pk
                if state == "off":
                    with open(root / "pyproject.toml", "a") as f:
                        f.write("\n[tool.mtest]\nimpact = false\n")
                roots[state] = root
            py = python if make is not None else suite_python
            cmds = {}
            for state, root in roots.items():
                # packaging: the copy's own src/ is what its tests import.
                env = dict(os.environ, PYTHONPATH=str(root / "src")) if make is None else None
                cmd = [str(MTEST), "--root", str(root), "--python", py, "-j", "2", "--isolation", "fork"]
                cmds[f"mtest -j2 fork impact {state}"] = (cmd, True, False, env)
            row = interleaved(cmds, work, reps)
            on, off = row["mtest -j2 fork impact on"].wall, row["mtest -j2 fork impact off"].wall
            print(f"\nimpact, Python {tag}, {name}: recording on {on:6.2f} s, off {off:6.2f} s: "
                  f"{100 * (on / off - 1):+5.1f}%")
            stored = roots["on"] / ".gates" / "impact.json"
            if stored.exists():
                print(f"  .gates/impact.json {stored.stat().st_size / 1e6:.1f} MB")
            limit = 15.0 if tag == "3.11" else 5.0
            checks.append((f"recording costs <= {limit:.0f}% ({tag}, {name})", 100 * (on / off - 1), limit))
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", default="trivial,cpu,big,packaging,crash,events")
    parser.add_argument("--no-download", action="store_true", help="leave out packaging")
    parser.add_argument("--python312", default=None, help="a Python 3.12 for the impact suite")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if args.no_download:
        only.discard("packaging")
    if not MTEST.is_file():
        sys.exit(f"{MTEST} is missing: run `cargo build --release` first")
    xdist = has(PYTHON, "xdist")
    work = Path(tempfile.mkdtemp(prefix="mtest-bench-"))
    # The built-in plugins are compiled once per mtest binary and cached: not in a timed run.
    subprocess.run([str(MTEST), "plugins", "list"], capture_output=True)
    print(f"mtest supervisor benchmark: {os.cpu_count()} CPUs, Python {PYTHON}, median of {args.reps}")
    if not xdist:
        print("  (pytest-xdist is not installed: the `pytest -n 2` column is left out)")
    modes = ("fork", "process")
    checks = []
    try:
        if "trivial" in only:
            trivial(work / "trivial")
            t = show("trivial: 5,000 trivial tests in 100 files (warm)",
                     interleaved(commands(PYTHON, xdist, modes, ("1", "2")), work / "trivial", args.reps))
            checks += [
                ("5,000 trivial -j1 fork <= 1.0x", t["mtest -j1 fork"].wall / t["plain pytest"].wall, 1.0),
                ("5,000 trivial -j2 fork <= 0.7x", t["mtest -j2 fork"].wall / t["plain pytest"].wall, 0.7),
            ]
        if "cpu" in only:
            cpu(work / "cpu")
            c = show("cpu: 24 CPU-bound tests in 6 files (warm)",
                     interleaved(commands(PYTHON, xdist, modes, ("1", "2")), work / "cpu", args.reps))
            checks.append(("CPU-bound -j2 fork <= 0.55x", c["mtest -j2 fork"].wall / c["plain pytest"].wall, 0.55))
        if "big" in only:
            trivial(work / "big", 1000, 100)
            b = show("big: 100,000 trivial tests in 1,000 files",
                     interleaved(commands(PYTHON, False, ("fork",), ("2",), warm=True, cold=True),
                                 work / "big", max(1, args.reps - 2)))
            cold = b["mtest -j2 fork cold"]
            checks += [
                ("100k trivial cold -j2 fork <= 0.7x", cold.wall / b["plain pytest"].wall, 0.7),
                ("100k: mtest's own peak RSS <= 150 MB", cold.rss_mb, 150),
                ("100k: mtest's own CPU <= 3% of wall", 100 * cold.cpu / cold.wall, 3),
            ]
        if "packaging" in only:
            root, python = packaging_suite(work)
            p = show("packaging 26.4's suite (64k tests)",
                     interleaved(commands(python, True, modes, ("2",), warm=True, cold=True)
                                 | {k: v for k, v in commands(python, False, ("fork",), ("1",)).items()
                                    if k != "plain pytest"},
                                 root, args.reps))
            base = p["plain pytest"].wall
            checks += [
                ("packaging cold -j2 fork <= 0.65x", p["mtest -j2 fork cold"].wall / base, 0.65),
                ("packaging warm -j2 fork <= 0.6x", p["mtest -j2 fork warm"].wall / base, 0.6),
                ("packaging cold -j2 process <= 1.0x", p["mtest -j2 process cold"].wall / base, 1.0),
            ]
        if "crash" in only:
            segfaults = {(3, 7), (11, 0), (19, 49), (27, 25), (31, 12)}
            trivial(work / "crash", 40, 50, segfaults)
            trivial(work / "clean", 40, 50)
            (work / "one").mkdir()
            (work / "one" / "pyproject.toml").write_text(CONFIG)
            (work / "one" / "test_one.py").write_text("def test_one():\n    pass\n")
            one = statistics.median(
                run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"], work / "one").wall
                for _ in range(args.reps)
            )
            print("\ncrash: 2,000 trivial tests in 40 files, 5 of them segfault, beside the clean twin (-j2, warm)")
            print(f"  one-test pytest run      {one:7.2f} s")
            for mode in modes:
                cmd = [str(MTEST), "--python", PYTHON, "-j", "2", "--isolation", mode]
                for suite in ("clean", "crash"):
                    run(cmd, work / suite)
                times = {"clean": [], "crash": []}
                for _ in range(args.reps):
                    for suite in times:
                        times[suite].append(run(cmd, work / suite).wall)
                clean, crash = (statistics.median(times[s]) for s in ("clean", "crash"))
                each = (crash - clean) / len(segfaults)
                print(f"  {mode:<8} clean {clean:5.2f} s; each crash adds {each:5.2f} s = {each / one:4.2f}x a one-test run")
                if mode == "fork":
                    checks.append(("a segfault adds <= 0.25x a one-test run (fork)", each / one, 0.25))
        if "impact" in only:
            checks += impact_cost(work, args.reps, find_python312(args.python312))
        if "events" in only:
            trivial(work / "events")
            plugin_dir = work / "plugin"
            plugin_dir.mkdir()
            shutil.copytree(REPO / "host" / "src" / "pytest" / "mtest_events", plugin_dir / "mtest_events")
            base = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            env = dict(os.environ, PYTHONPATH=str(plugin_dir), MTEST_EVENTS=str(work / "events.jsonl"))
            cmds = {
                "plain pytest": (base, False, False, None),
                "with the event plugin": (base + ["-p", "mtest_events"], False, False, env),
            }
            e = show("events: 5,000 trivial tests, pytest with and without mtest's event plugin",
                     interleaved(cmds, work / "events", max(args.reps, 5)))
            per_test = (e["with the event plugin"].wall - e["plain pytest"].wall) / 5000 * 1000
            print(f"  the event channel costs {per_test:.3f} ms a test")

        print("\ntargets")
        for label, value, limit in checks:
            print(f"  {label:<50} {value:6.2f}  {'met' if value <= limit else 'MISSED'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
