"""Each test's dependencies (recorded by `mtest_impact`) on the wire: a test's `finish`
carries the numbers of its dependency sets (`"deps": [own, early, late]`, the last two
when there is something in them: see `mtest_impact`), declared before in
the same event file by `source`, `block` and `deps` events. A plugin of its own
(registered through `mtest_events.pytest_plugins`), so that its hooks sit beside the
others' of the same name."""

import sys

import pytest

import mtest_impact as impact

from . import channel
from .state import S

if S.env.get("MTEST_EVENTS"):
    impact.start(S.env)  # a no-op when mtest_boot started it before pytest
    if impact.R.on and sys.version_info < (3, 12):
        import mtest_rewrite

        mtest_rewrite.chain_pytest()
    if S.env.get("MTEST_IMPACT") == "1" and impact.R.why_not:
        S.notices.append("what each test depends on is not recorded in this run (%s): "
                         "`mtest --changed` will run every test of it" % impact.R.why_not)

_declared = impact.Declarations()
_item = None
_collected = None  # the test file whose collection is done, its children's too soon,
# and whether it is a test module (not a conftest, an `__init__` or a doctest module)
_test_module = False
_used = None  # the fixtures the test in flight used, taken before pytest lets go of them


def new_chunk():
    """A new event file: what it mentions is declared anew."""
    global _declared
    _declared = impact.Declarations()


def begin(item):
    global _item, _used
    _item, _used = item, None
    impact.begin_test()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """The fixtures the test used, while its request still holds them (pytest drops it
    at the end of the test's protocol, before its finish; this runs before pytest's own
    teardown)."""
    global _used
    if impact.R.on:
        _used = _fixtures_of(item)


def finish():
    """The numbers of the dependency sets of the test that began (declared now), or None
    when it has no record (recording off, a file unreadable)."""
    global _item
    item, _item = _item, None
    if item is None or not impact.R.on:
        return None
    deps = impact.end_test(item, _used if _used is not None else _fixtures_of(item))
    if deps is None:
        return None
    return _declared.of(deps, _emit)


def _emit(line):
    channel.emit_line(line, flush=False)


def _fixtures_of(item):
    """The fixture definitions the test used: those its request activated (asked for by
    name at run time too: a doctest's `doctest_namespace`), else its closure's."""
    used = getattr(getattr(item, "_request", None), "_fixture_defs", None)
    if isinstance(used, dict):
        return list(used.values())
    info = getattr(item, "_fixtureinfo", None)
    return [d for ds in info.name2fixturedefs.values() for d in ds] if info is not None else ()


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    cache = getattr(config, "cache", None)
    if cache is not None and impact.R.on:
        impact.leave_out(str(cache._cachedir))


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if not impact.R.on:
        yield
        return
    impact.note_requester(fixturedef)
    if fixturedef.scope == "function":
        yield
        return
    before = impact.fixture_begin()
    try:
        yield
    finally:
        impact.fixture_end(fixturedef, before)


def pytest_collectstart(collector):
    global _collected
    if impact.R.on and isinstance(collector, pytest.File):
        _end_of(_collected)
        _collected = None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    global _collected, _test_module
    yield
    if impact.R.on and isinstance(collector, pytest.File):
        _collected = impact.relpath(str(collector.path))
        _test_module = (isinstance(collector, pytest.Module)
                        and type(collector).__name__ != "DoctestModule"
                        and collector.path.name not in ("conftest.py", "__init__.py"))
        module = collector.__dict__.get("_obj")  # a Module's, once imported
        if _collected is not None and module is not None:
            impact.R.refer(_collected, module)


def pytest_collection_finish(session):
    global _collected
    if impact.R.on:
        _end_of(_collected)
        _collected = None
        impact.R.end_early_part()
        impact.find_caches()
        impact.tests_begin()


def _end_of(rel):
    """A test file's collection and its children's are done: what ran so far counts for
    its tests. (Called when the next file's collection starts, or at the end: pytest
    collects a file's classes after the file's own report.)"""
    if rel is not None:
        impact.R.end_early_part(rel, _test_module)


__all__ = ["pytest_collection_finish", "pytest_collectstart", "pytest_configure",
           "pytest_fixture_setup", "pytest_make_collect_report", "pytest_runtest_teardown"]
