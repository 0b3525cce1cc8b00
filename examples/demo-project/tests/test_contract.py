"""Tier 1: the ordinary outcomes."""
import pytest


@pytest.mark.contract
def test_wire_format_is_stable():
    assert "a=1".split("=") == ["a", "1"]


@pytest.mark.regression
def test_a_real_failure():
    """Fails: the kind of failure mtest bundles with its traceback and output."""
    print("computing the total...")
    total = sum([0.1, 0.2])
    assert total == 0.3


@pytest.mark.contract
@pytest.mark.skip(reason="the v2 format is not written yet")
def test_v2_format():
    pass


@pytest.mark.regression
@pytest.mark.xfail(reason="known bug #12: rounding")
def test_known_bug():
    assert round(2.675, 2) == 2.68


@pytest.mark.regression
@pytest.mark.xfail(reason="was flaky, now fixed? (xpassed)")
def test_fixed_bug():
    assert True
