"""What the benchmarks share: how they start a seatflow command or another module of ours."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from typing import Any


def run_python(*args: str, nice: int = 0, stdout: Any = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """This Python with `args` in a child process at niceness `nice`; its output discarded
    unless `stdout` says where (subprocess.PIPE: read it as text)."""
    return subprocess.Popen([*(["nice", "-n", str(nice)] if nice else []), sys.executable, *args],
                            stdout=stdout, stderr=subprocess.DEVNULL, text=True)


def run_cli(*args: str, nice: int = 0) -> subprocess.Popen[str]:
    """`seatflow <args>` in a child process at niceness `nice`, its output discarded."""
    return run_python("-m", "pipelines.cli.main", *args, nice=nice)


def report_dict(report: Any) -> dict[str, Any]:
    """A report dataclass as a dict, for --json."""
    return asdict(report)
