"""A reporter plugin for mtest, written in Python and compiled with componentize-py.

It does what examples/reporter-github does in Rust: a GitHub Actions annotation per
failure (printed by mtest) and a JSON digest in its output directory (mounted at /out,
the only place it may write).
"""

import json

from wit_world import exports
from wit_world.exports.reporter import RunStart, RunSummary, TestRecord, Wanted
from wit_world.imports.types import Outcome, PluginInfo, PluginKind

FAILURES = {Outcome.FAILED, Outcome.ERROR, Outcome.HUNG, Outcome.CRASHED}

_state = {"run_id": "", "failures": []}


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


class Identity(exports.Identity):
    def info(self) -> PluginInfo:
        return PluginInfo(
            name="reporter-python",
            version="0.1.0",
            kind=PluginKind.REPORTER,
            description="GitHub annotations and a JSON digest, written in Python",
        )


class Reporter(exports.Reporter):
    def wants(self) -> Wanted:
        # Annotations and the digest are about failures, which every reporter is sent (with
        # the retries of failed tests): ask for nothing more, and passing records are not sent.
        return Wanted(every=False, slowest=0, min_share=None)

    def on_run_start(self, start: RunStart) -> list[str]:
        _state["run_id"] = start.run_id
        _state["failures"] = []
        return []

    def on_tests(self, tests: list[TestRecord]) -> list[str]:
        lines = []
        for test in tests:
            if test.outcome not in FAILURES:
                continue
            name = test.outcome.name.lower()
            message = test.report.message if test.report else ""
            bundle = test.report.bundle if test.report else None
            _state["failures"].append({"test_id": test.test_id, "outcome": name, "message": message, "bundle": bundle})
            where = f"file={test.file}" + (f",line={test.line}" if test.line is not None else "")
            if not test.replayed:  # a replayed record was annotated by the run that ran it
                lines.append(f"::error {where}::{_escape(message or name)}")
        return lines

    def on_run_end(self, summary: RunSummary) -> list[str]:
        digest = {
            "run_id": _state["run_id"],
            "exit_code": summary.exit_code,
            "counts": {o.name.lower(): n for o, n in summary.counts},
            "failures": _state["failures"],
        }
        with open("/out/digest.json", "w") as f:
            json.dump(digest, f, indent=2)
        return [f"reporter-python: wrote digest.json with {len(_state['failures'])} failure(s)"]
