"""`python -m mtest_boot ARGS` is `python -m pytest ARGS` with `mtest_impact` recording
from the first line of pytest on (pytest imports some projects -- packaging -- while it
reads its configuration, before any plugin)."""

import os
import runpy

import mtest_impact

mtest_impact.start(os.environ)
runpy.run_module("pytest", run_name="__main__", alter_sys=True)
