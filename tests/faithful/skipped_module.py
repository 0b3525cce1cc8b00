import pytest

pytest.importorskip("no_such_module_beside_pytest")


def test_never_collected():
    pass
