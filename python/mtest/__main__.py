"""`python -m mtest ARGS`: runs the installed `mtest` binary with ARGS."""

import os
import sys

from mtest import find_mtest_bin


def main() -> None:
    try:
        mtest = os.fsdecode(find_mtest_bin())
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    if sys.platform == "win32":
        import subprocess

        sys.exit(subprocess.run([mtest, *sys.argv[1:]]).returncode)
    os.execv(mtest, [mtest, *sys.argv[1:]])


if __name__ == "__main__":
    main()
