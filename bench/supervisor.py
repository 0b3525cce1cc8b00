#!/usr/bin/env python3
"""mtest beside plain pytest and `pytest -n 2` (xdist), on the same generated suites, in one
run; prints wall times and ratios against the targets of the supervisor issue.

    .venv/bin/python bench/supervisor.py [--reps 3]      (or: ./dev bench)

Suites (generated in a temp dir, each with the adoption config `timeout = 30`, so plain
pytest pays pytest-timeout's per-test timer exactly as mtest does):
  trivial   5,000 trivial tests in 100 files
  cpu       24 CPU-bound tests (~0.4 s each) in 6 files
  crash     2,000 trivial tests in 40 files with 5 segfaults, and its clean twin; the
            crash cost is shown warm (a test that crashed last time runs alone), with the
            re-run of a new crash alone for its bundle (`rerun-crashed`, on by default),
            and the first time a crash is met (no history)

mtest runs are warm: one untimed run first, so durations and the collection cache are in
place. Each figure is the median of --reps runs, the commands of a suite taken in turn.
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
MTEST = REPO / "target" / "release" / "mtest"
PYTHON = sys.executable
CONFIG = "[tool.pytest.ini_options]\ntimeout = 30\n"


def write_suite(root, files):
    if root.exists():
        shutil.rmtree(root)
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text(CONFIG)
    for name, text in files.items():
        (root / "tests" / name).write_text(text)


def trivial(root, n_files=100, per_file=50, segfaults=()):
    files = {}
    for f in range(n_files):
        lines = ["import ctypes\n"]
        for t in range(per_file):
            body = "ctypes.string_at(0)" if (f, t) in segfaults else "pass"
            lines.append(f"def test_{t}():\n    {body}\n")
        files[f"test_f{f:03}.py"] = "".join(lines)
    write_suite(root, files)


def cpu(root, n_files=6, per_file=4, loops=7_000_000):
    body = f"    total = 0\n    for i in range({loops}):\n        total += i * i\n    assert total > 0\n"
    files = {
        f"test_cpu{f}.py": "".join(f"def test_{t}():\n{body}" for t in range(per_file)) for f in range(n_files)
    }
    write_suite(root, files)


def wall(cmd, cwd, ok=(0, 1)):
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - started
    if done.returncode not in ok:
        sys.exit(f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stderr.decode()[-2000:]}")
    return took


def median(cmd, cwd, reps, warm=False, ok=(0, 1)):
    if warm:
        wall(cmd, cwd, ok)
    return statistics.median(wall(cmd, cwd, ok) for _ in range(reps))


def interleaved(cmds, cwd, reps):
    """Median wall time of each command, taken round-robin so that drift in the machine's
    speed (seen here: +-10% over a minute) falls on every command alike."""
    times = {label: [] for label in cmds}
    for label, (cmd, warm) in cmds.items():
        if warm:
            wall(cmd, cwd)
    for _ in range(reps):
        for label, (cmd, _warm) in cmds.items():
            times[label].append(wall(cmd, cwd))
    return {label: statistics.median(t) for label, t in times.items()}


def has_xdist():
    return subprocess.run([PYTHON, "-c", "import xdist"], capture_output=True).returncode == 0


def compare(name, root, reps, xdist):
    pytest = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    mtest = [str(MTEST), "--python", PYTHON]
    cmds = {"plain pytest": (pytest, False)}
    if xdist:
        cmds["pytest -n 2"] = (pytest + ["-n", "2"], False)
    cmds["mtest -j1"] = (mtest + ["-j", "1"], True)
    cmds["mtest -j2"] = (mtest + ["-j", "2"], True)
    row = interleaved(cmds, root, reps)
    base = row["plain pytest"]
    print(f"\n{name}")
    for label, secs in row.items():
        print(f"  {label:<14} {secs:7.2f} s   {secs / base:5.2f}x plain pytest")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if not MTEST.is_file():
        sys.exit(f"{MTEST} is missing: run `cargo build --release` first")
    xdist = has_xdist()
    work = Path(tempfile.mkdtemp(prefix="mtest-bench-"))
    print(f"mtest supervisor benchmark: {os.cpu_count()} CPUs, Python {PYTHON}, median of {args.reps}")
    if not xdist:
        print("  (pytest-xdist is not installed: the `pytest -n 2` column is left out)")
    try:
        trivial(work / "trivial")
        t = compare("trivial: 5,000 trivial tests in 100 files", work / "trivial", args.reps, xdist)
        cpu(work / "cpu")
        c = compare("cpu: 24 CPU-bound tests in 6 files", work / "cpu", args.reps, xdist)

        segfaults = {(3, 7), (11, 0), (19, 49), (27, 25), (31, 12)}
        trivial(work / "crash", 40, 50, segfaults)
        trivial(work / "clean", 40, 50)
        # The same crashes without re-running each crashed test alone for its bundle.
        trivial(work / "crash-no-rerun", 40, 50, segfaults)
        with open(work / "crash-no-rerun" / "pyproject.toml", "a") as f:
            f.write("\n[tool.mtest]\nrerun-crashed = false\n")
        (work / "one").mkdir()
        (work / "one" / "pyproject.toml").write_text(CONFIG)
        (work / "one" / "test_one.py").write_text("def test_one():\n    pass\n")
        one = median([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"], work / "one", args.reps)
        mtest = [str(MTEST), "--python", PYTHON]
        results = {}
        for jobs in ("1", "2"):
            cmd = mtest + ["-j", jobs]
            suites = ("clean", "crash-no-rerun", "crash")
            for suite in suites:
                wall(cmd, work / suite)
            times = {suite: [] for suite in suites}
            for _ in range(args.reps):
                for suite in suites:
                    times[suite].append(wall(cmd, work / suite))
            clean, bare, full = (statistics.median(times[s]) for s in suites)
            # The first time a crash is met: no history, so nothing is isolated yet.
            first = []
            for _ in range(args.reps):
                for suite in ("clean", "crash-no-rerun"):
                    (work / suite / ".gates" / "durations.json").unlink(missing_ok=True)
                first.append(wall(cmd, work / "crash-no-rerun") - wall(cmd, work / "clean"))
            results[jobs] = (
                clean,
                (bare - clean) / len(segfaults),
                (full - clean) / len(segfaults),
                statistics.median(first) / len(segfaults),
            )
        print("\ncrash: 2,000 trivial tests in 40 files, 5 of them segfault, beside the clean twin")
        print(f"  one-test pytest run      {one:7.2f} s")
        for jobs, (clean, bare, full, first) in results.items():
            print(
                f"  mtest -j{jobs}: clean {clean:5.2f} s; a crash adds {bare:5.2f} s = {bare / one:4.2f}x a one-test run "
                f"({full / one:4.2f}x with a re-run alone for the bundle, the default); "
                f"the first time it is met: {first:5.2f} s = {first / one:4.2f}x"
            )

        print("\ntargets")
        checks = [
            ("mtest -j1 <= 1.05x plain pytest (trivial, warm)", t["mtest -j1"] / t["plain pytest"], 1.05),
            ("mtest -j2 <= 0.60x plain pytest (cpu-bound)", c["mtest -j2"] / c["plain pytest"], 0.60),
            ("a segfault costs <= 1.5x a one-test run (-j2)", results["2"][1] / one, 1.5),
        ]
        for label, value, limit in checks:
            print(f"  {label:<50} {value:5.2f}  {'met' if value <= limit else 'MISSED'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
