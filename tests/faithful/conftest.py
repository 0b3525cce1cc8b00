import os
import pathlib
import shutil

import pytest


@pytest.fixture(autouse=True)
def _where(request):
    """Which process ran each test."""
    with open(os.environ["BESIDE_PIDS"], "a") as f:
        f.write("%s %d\n" % (request.node.nodeid, os.getpid()))


@pytest.fixture(scope="session")
def per_worker_dir(worker_id):
    """A resource of its own per worker, named by pytest-xdist's worker_id (a test
    database, a port, a directory): made exclusively, so two workers sharing a name fail."""
    path = pathlib.Path(os.environ["BESIDE_SHARED"]) / ("res-%s" % worker_id)
    path.mkdir()
    yield path
    shutil.rmtree(path)
