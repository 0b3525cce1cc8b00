import logging
import warnings

import pytest


def test_ok():
    pass


def test_fails():
    x = 1
    assert x == 2


@pytest.mark.slow
def test_slow_marked():
    pass


def test_skipped():
    pytest.skip("not here")


@pytest.mark.xfail
def test_xfails():
    assert 0


@pytest.mark.xfail
def test_xpasses():
    pass


def test_warns():
    warnings.warn("a user warning", UserWarning)


def test_logs():
    logging.getLogger("flags").warning("a log line")


def test_prints(capsys):
    print("hello")
    assert capsys.readouterr().out == "hello\n"


def test_prints_freely():
    print("free output")


def test_tmp_path(tmp_path):
    (tmp_path / "f").write_text("x")
    assert (tmp_path / "f").read_text() == "x"


def test_uses_conftest_fixture(from_conftest):
    assert from_conftest == 42
