"""Tests that take a plain pytest run down with them. Under mtest each is one outcome."""
import ctypes
import os
import time

import pytest


@pytest.mark.slow
def test_HANGS_forever():
    """`hung`: pytest-timeout (thread method) dumps the stacks and ends the process;
    mtest records the hang and runs the rest of the file in a new pytest process."""
    time.sleep(3600)


@pytest.mark.e2e
def test_CRASHES_with_a_segfault():
    """`crashed`: a C extension dereferences NULL."""
    ctypes.string_at(0)


@pytest.mark.e2e
def test_CRASHES_with_a_hard_exit():
    """`crashed`: os._exit skips pytest's reporting entirely."""
    os._exit(3)


@pytest.mark.e2e
def test_still_runs_after_the_crashes():
    assert True
