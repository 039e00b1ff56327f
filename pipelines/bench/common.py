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




def report_dict(report: Any) -> dict[str, Any]:
    """A report dataclass as a dict, for --json."""
    return asdict(report)
