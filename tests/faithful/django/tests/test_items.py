import os
import time

import pytest
from django.db import connection

from app.models import Item


def _worker_db():
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return "test_app" + ("_" + worker if worker else "")


def _one_row_of_its_own(i, request):
    """A row, a pause (the other worker's tests run meanwhile), and only that row; the
    database's name noted in dbnames.txt."""
    Item.objects.create(name=str(i))
    time.sleep(0.2)
    assert Item.objects.count() == 1
    with open(request.config.rootpath / "dbnames.txt", "a") as f:
        f.write(connection.settings_dict["NAME"] + "\n")


@pytest.mark.django_db
@pytest.mark.parametrize("i", range(6))
def test_rows_in_a_transaction(i, request):
    _one_row_of_its_own(i, request)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("i", range(6))
def test_rows_committed_then_flushed(i, request):
    _one_row_of_its_own(i, request)


@pytest.mark.django_db
def test_the_database_is_the_workers_own():
    assert connection.settings_dict["NAME"] == _worker_db()
