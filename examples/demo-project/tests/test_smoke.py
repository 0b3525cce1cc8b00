"""Tier 0: is the build broken at all?"""
import pytest


@pytest.mark.smoke
def test_imports_work():
    import json

    assert json.loads("[1]") == [1]


@pytest.mark.smoke
def test_arithmetic():
    assert sum(range(10)) == 45
