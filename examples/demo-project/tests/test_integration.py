"""Tier 1-2: fixtures and pytest 9 subtests."""
import pytest


@pytest.fixture
def database():
    raise ConnectionError("database at localhost:5432 is not running")


@pytest.mark.integration
def test_needs_a_database(database):
    """An `error`: the fixture fails during setup."""


@pytest.mark.use_case
def test_many_cases(subtests):
    """pytest 9 subtests: rolled up into this one record."""
    for n in range(5):
        with subtests.test(n=n):
            assert n * 2 == n + n
