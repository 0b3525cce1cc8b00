"""Behaviours a test can observe, each compared between plain pytest and mtest.

The matrix runs this module twice: as tests/test_0_behaviour.py, first in the run (a
worker's first batch), and as tests/test_z_behaviour.py, last (a worker's later batch at
-j 2, after the filler module). A test here passes or fails the same way under both.
"""
import faulthandler
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from gc import get_referrers as imported_get_referrers

import pytest


class Made:
    """Instances made while the module is imported: at collection, in mtest's zygote."""


MADE = Made()


# ---- per-test timeouts (pytest-timeout; `timeout = 2` in the ini)

@pytest.mark.timeout(1)
def test_timeout_by_marker():
    time.sleep(2.5)


def test_timeout_by_ini():
    time.sleep(3.5)


# ---- the gc heap: objects made at collection are the collector's, as under pytest

def test_gc_referrers_of_a_coroutines_local():
    """As anyio's refcycle tests check: nothing but the running coroutine holds it, and
    that is not listed (a wrapper around gc.get_referrers would make it listed)."""
    import asyncio

    async def main():
        try:
            raise ValueError
        except ValueError as e:
            exc = e
        return gc.get_referrers(exc)

    assert asyncio.run(main()) == []


def test_gc_referrers_through_an_imported_name():
    assert imported_get_referrers(MADE)


def test_gc_objects_see_collection_time_objects():
    assert any(isinstance(o, Made) for o in gc.get_objects())


def test_gc_leak_check_fails_as_under_pytest():
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, Made)]


def test_gc_nothing_frozen():
    assert gc.get_freeze_count() == 0


# ---- the environment

def test_environ_is_what_pytest_gives():
    """pytest-xdist's worker identity aside (mtest's workers have one, as xdist's do)."""
    ours = sorted(k for k in os.environ
                  if (k.startswith("MTEST") and k != "MTEST_CACHE_DIR")
                  or k == "PYTHONFAULTHANDLER")
    assert ours == []
    assert os.environ.get("PYTHONPATH") == os.environ["BESIDE_PYTHONPATH"]
    assert not [p for p in sys.path if "mtest-plugin" in p]


def test_a_subprocess_gets_the_same_environment():
    code = ("import faulthandler, json, os; "
            "print(json.dumps([dict(os.environ), faulthandler.is_enabled()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    env, enabled = json.loads(out.stdout)
    assert enabled is False
    mine = dict(os.environ)
    # COLUMNS and LINES: set in the C environment under plain pytest too.
    assert {k: (mine.get(k), env.get(k)) for k in set(mine) | set(env)
            if mine.get(k) != env.get(k) and k not in ("COLUMNS", "LINES")} == {}


def test_faulthandler_is_on_in_the_test():
    assert faulthandler.is_enabled()


# ---- pytest's cache

def test_cache_fixture(cache):
    cache.set("beside/key", [1, 2])
    assert cache.get("beside/key", None) == [1, 2]


def test_config_cache(request):
    assert request.config.cache.get("beside/absent", 7) == 7


# ---- capture

def test_capsys(capsys):
    print("out")
    sys.stderr.write("err\n")
    assert capsys.readouterr() == ("out\n", "err\n")


def test_capfd(capfd):
    os.write(1, b"fd out\n")
    os.write(2, b"fd err\n")
    assert capfd.readouterr() == ("fd out\n", "fd err\n")


def test_capsysbinary(capsysbinary):
    sys.stdout.buffer.write(b"bin\n")
    sys.stdout.flush()
    assert capsysbinary.readouterr().out == b"bin\n"


def test_capfdbinary(capfdbinary):
    os.write(1, b"raw")
    assert capfdbinary.readouterr().out == b"raw"


def test_output_then_a_failure():
    print("visible")
    assert False


# ---- logging

def test_caplog(caplog):
    logging.getLogger("beside").warning("careful")
    assert [r.getMessage() for r in caplog.records] == ["careful"]


def test_caplog_at_level(caplog):
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("beside").debug("detail")
    assert "detail" in caplog.text


# ---- warnings (`filterwarnings = error::DeprecationWarning` in the ini)

def test_warns():
    with pytest.warns(UserWarning, match="x"):
        warnings.warn("x")


def test_deprecation_is_an_error_by_the_ini():
    warnings.warn("old", DeprecationWarning)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_marker_overrides_the_ini():
    warnings.warn("old", DeprecationWarning)


def test_recwarn(recwarn):
    warnings.warn("w", UserWarning)
    assert len(recwarn) == 1


# ---- signal handlers

def test_sigint_is_pythons_own():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_handler_of_the_test_runs():
    got = []
    old = signal.signal(signal.SIGUSR2, lambda *a: got.append(1))
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert got == [1]


# ---- cwd and sys.path, changed by a test the way pytest restores

def test_chdir_and_syspath_through_monkeypatch(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert os.getcwd() == str(tmp_path)


def test_cwd_and_syspath_are_back(request):
    assert os.getcwd() == str(request.config.rootpath)
    assert not [p for p in sys.path if "pytest-of" in p]


# ---- outcomes of every kind

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False


@pytest.mark.xfail(reason="fixed")
def test_xpass():
    pass


def test_skip():
    pytest.skip("not here")


@pytest.fixture
def broken_fixture():
    raise RuntimeError("setup broke")


def test_setup_error(broken_fixture):
    pass


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")


def test_teardown_error(broken_teardown):
    pass


def test_unknown_fixture(no_such_fixture_here):
    pass


# ---- per-worker resources, named as under pytest-xdist

def test_a_resource_per_worker(per_worker_dir):
    assert per_worker_dir.is_dir()


def test_worker_identity_is_xdists():
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:  # under mtest (and pytest -n), a worker's: gw0, gw1...
        assert worker.startswith("gw")
        assert int(os.environ["PYTEST_XDIST_WORKER_COUNT"]) >= 1
