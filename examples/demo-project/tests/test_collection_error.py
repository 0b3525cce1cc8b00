"""A module that fails to import: one `error` record; every other module still runs."""
import a_module_that_does_not_exist  # noqa: F401


def test_never_collected():
    pass
