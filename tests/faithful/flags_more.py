import pytest


@pytest.mark.unregistered_marker
def test_with_an_unregistered_marker():
    pass


@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n != 2


def test_fails_too():
    assert "a" == "b"
