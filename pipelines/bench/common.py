"""What the benchmarks share: how they start a seatflow command, and at what priority the
load generator runs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from typing import Any


def run_cli(*args: str, nice: int = 0) -> subprocess.Popen[bytes]:
    """`seatflow <args>` in a child process at niceness `nice`, its output discarded."""
    return subprocess.Popen([*(["nice", "-n", str(nice)] if nice else []),
                             sys.executable, "-m", "pipelines.cli.main", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# The simulator stands in for the fans' apps, which run on other machines. Here it shares the 2
# cores with what it measures, so it runs at a lower priority: it still makes its rate (see
# changes_published), but no longer delays Connect, Kafka and the processor (docs/performance.md).
# Its queries run in PostgreSQL's backends, at their usual priority.
SIMULATOR_NICE = 10


def report_dict(report: Any) -> dict[str, Any]:
    """A report dataclass as a dict, for --json."""
    return asdict(report)
