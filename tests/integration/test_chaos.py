"""`seatflow bench chaos`, short: one fault of each kind during a small on-sale, on the real
stack. Every committed version must reach seat-availability once, and the topics must end
equal to the database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.chaos import FAULT_KINDS
from pipelines.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_one_fault_of_each_kind_loses_and_duplicates_nothing(pipeline: Settings) -> None:
    # Through the command line, as a person runs it; the processor is started under the
    # stack's supervisord (the fixtures stopped any other) and stopped again afterwards.
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", "bench", "chaos", "--json",
         "--rate", "1000", "--changes", "5000", "--seed", "7", "--min-gap", "3",
         # Every fault must heal, within 60 s; whether within the targets (5 s, 30 s) is the
         # report's to say (stack/NOTES.md): on a shared CI machine it is not a test's.
         "--heal-timeout", "60", "--catch-up-timeout", "120",
         "--faults", ",".join(f"{k}=1" for k in FAULT_KINDS)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=880, check=False)
    assert done.stdout.lstrip().startswith("{"), done.stderr[-3000:]
    report = json.loads(done.stdout)
    # The command exits 1 when a target is missed (a heal time, say); the report is printed
    # either way.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert sorted(f["kind"] for f in report["faults"]) == sorted(FAULT_KINDS)
    assert not [f for f in report["faults"] if f["error"]], report["faults"]
    assert report["changes_committed"] >= 5000
    assert report["catch_up_s"] is not None, "the pipeline did not catch up after the on-sale"
    assert report["versions_lost"] == 0, report["lost_examples"]
    assert report["versions_duplicated"] == 0, report["duplicate_examples"]
    assert report["seat_differences"] == 0 and report["count_differences"] == 0, (
        report["reconciliation"])
    assert report["changes_published"] == report["changes_committed"]
    assert all(f["healed_s"] is not None for f in report["faults"]), report["faults"]
