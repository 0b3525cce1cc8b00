"""mtest, a test supervisor that drives pytest from the outside.

The tool is the `mtest` binary this package installs; `python -m mtest` runs it.
"""

import os
import sys
import sysconfig


def find_mtest_bin() -> str:
    """The `mtest` binary installed with this package."""
    exe = "mtest" + (sysconfig.get_config_var("EXE") or "")
    schemes = [None]
    if sys.version_info >= (3, 10):
        schemes.append(sysconfig.get_preferred_scheme("user"))
    else:
        schemes.append("posix_user" if os.name == "posix" else "nt_user")
    for scheme in schemes:
        scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        path = os.path.join(scripts, exe)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"the mtest binary is not in {sysconfig.get_path('scripts')}: reinstall mgf-test-supervisor"
    )
