"""The event plugin's own tests: it runs inside real pytest processes started by pytester,
told by mtest's environment variables what to do, as mtest would start them."""

import json
import os
import pathlib

import pytest

pytest_plugins = ["pytester"]

REPO = pathlib.Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "crates" / "mtest-pytest" / "src"
WIRE = PLUGIN_DIR / "wire"


def golden(name):
    """The wire's golden file `name` (events.jsonl, commands.jsonl), one dict a line."""
    with open(WIRE / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_events(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def plugin_env(monkeypatch, tmp_path):
    """PYTHONPATH with the plugin on it and an event file; returns the event file."""
    events = tmp_path / "run.events"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(PLUGIN_DIR), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MTEST_EVENTS", str(events))
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
    return events
