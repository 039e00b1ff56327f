"""The processes a chaos run kills, and how it tells that each healed."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

import psutil
import requests

from pipelines.chaos.tail import VersionTail
from pipelines.connect import connect_session
from pipelines.processor.supervise import WORKER_MODULE
from pipelines.settings import Settings
from pipelines.stack import health
from pipelines.stack.configs import PG_OS_USER
from pipelines.stack.layout import StackLayout, running_as_root
from pipelines.stack.supervisor import Supervisor

# The processor's worker: the process that consumes and publishes, run (and restarted at once)
# by a supervising parent; its command line names the module.
PROCESSOR_WORKER_MARKER = WORKER_MODULE
# Until the worker runs as a child of its own, the processor is the `processor run` command
# (the stack's supervisord program) or a Dagster run of the availability_stream job.
_PROCESSOR_FALLBACKS: tuple[tuple[str, ...], ...] = (
    ("pipelines.cli.main processor run",),
    ("seatflow processor run",),
    ("execute_run", "availability_stream"),
)


# ---- processes --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProcessRow:
    pid: int
    ppid: int
    create_time: float
    cmdline: tuple[str, ...]


def pick_processor(rows: Iterable[ProcessRow]) -> int | None:
    """Of the machine's processes, the processor's worker to kill (pure): one whose command
    line names PROCESSOR_WORKER_MARKER, else `processor run` or a Dagster availability_stream
    run; the oldest (a warm standby is always started after the worker it stands by for, so
    the oldest worker is the active one). Processes of a bench command (chaos itself, its
    on-sale) never count."""
    markers = ((PROCESSOR_WORKER_MARKER,), *_PROCESSOR_FALLBACKS)
    ranked: dict[int, list[ProcessRow]] = {}
    for row in rows:
        if "bench" in row.cmdline:
            continue
        joined = " ".join(row.cmdline)
        rank = next((i for i, needles in enumerate(markers)
                     if all(n in joined for n in needles)), None)
        if rank is not None:
            ranked.setdefault(rank, []).append(row)
    if not ranked:
        return None
    best = sorted(ranked[min(ranked)], key=lambda r: r.create_time)
    # A `processor run` that supervises a child with the same words in its command line: the
    # child is the one that works.
    pids = {r.pid for r in best}
    children = [r for r in best if r.ppid in pids]
    return (children or best)[0].pid


def find_processor(*, exclude: Iterable[int] = ()) -> psutil.Process | None:
    """The processor's worker process on this machine (see pick_processor), if one runs."""
    skip = {os.getpid(), *exclude}
    rows = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline", "create_time"]):
        info = proc.info
        if info["pid"] in skip or not info["cmdline"]:
            continue
        rows.append(ProcessRow(info["pid"], info["ppid"] or 0, info["create_time"] or 0.0,
                               tuple(info["cmdline"])))
    pid = pick_processor(rows)
    if pid is None:
        return None
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def connector_running(settings: Settings) -> bool:
    try:
        with connect_session(settings, retries=0) as session:
            r = session.get(f"{settings.connect_url}/connectors/{settings.connector_name}/status",
                            timeout=2)
    except requests.RequestException:
        return False
    if not r.ok:
        return False
    status = r.json()
    tasks = status.get("tasks", [])
    return status["connector"]["state"] == "RUNNING" and bool(tasks) and all(
        t["state"] == "RUNNING" for t in tasks)



class Injector:
    """Injects one fault and tells when the stack has healed from it."""

    def __init__(self, settings: Settings, tail: VersionTail) -> None:
        self.settings = settings
        self.layout = StackLayout.of(settings)
        self.sup = Supervisor(self.layout)
        self.tail = tail

    def inject(self, kind: str) -> tuple[str, int | None]:
        """Do it; (what was hit, its pid when a process was killed)."""
        if kind == "processor":
            proc = find_processor()
            if proc is None:
                raise RuntimeError("no processor process found")
            proc.send_signal(signal.SIGKILL)
            return f"pid {proc.pid}", proc.pid
        if kind == "postgres":
            pg_ctl = [str(self.settings.pg_bin_dir / "pg_ctl"), "stop", "-m", "immediate",
                      "-D", str(self.layout.pg_data)]
            cmd = ["runuser", "-u", PG_OS_USER, "--", *pg_ctl] if running_as_root() else pg_ctl
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise RuntimeError(f"pg_ctl stop failed: {(done.stderr or done.stdout).strip()}")
            return f"immediate stop of {self.layout.pg_data}", None
        info = self.sup.info(kind)
        if info.state != "RUNNING" or not info.pid:
            raise RuntimeError(f"{kind} is {info.state}, not running")
        os.kill(info.pid, signal.SIGKILL)
        return f"pid {info.pid}", info.pid

    def healed(self, kind: str, killed_pid: int | None, at: float) -> bool:
        """The killed service is back and the pipeline flows end to end again: changes
        committed after the fault reach seat-availability, in every partition (see
        flowing_since). A service that is up while capture or the processor is stuck has not
        healed as far as fans can tell."""
        if kind == "processor":
            if find_processor(exclude=[killed_pid] if killed_pid else []) is None:
                return False
        else:
            info = self.sup.info(kind)
            if info.state not in ("RUNNING", "STARTING") or (killed_pid and info.pid == killed_pid):
                return False
            if health.check(kind, self.settings) is not None:
                return False
        return self.tail.flowing_since(at)
