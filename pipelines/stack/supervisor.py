"""Talking to the stack's own supervisord over its unix socket (XML-RPC)."""

from __future__ import annotations

import subprocess
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from pipelines.polling import PollTimeoutError, poll
from pipelines.stack.configs import supervisord_argv
from pipelines.stack.errors import StackError
from pipelines.stack.layout import StackLayout

__all__ = ["ALIVE", "ProcessInfo", "Supervisor"]

# States of a program supervisord runs or is restarting (BACKOFF: it died while starting and
# will be tried again); startProcess refuses all three.
ALIVE = ("RUNNING", "STARTING", "BACKOFF")


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    name: str
    state: str  # RUNNING, STARTING, STOPPED, EXITED, FATAL, BACKOFF, ...
    pid: int
    description: str


class Supervisor:
    """The supervisord of one stack home: started by `up`, shut down by `down`."""

    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout

    def _proxy(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.layout.supervisord_socket}")
        # The host part is ignored: the transport speaks over the unix socket.
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def is_running(self) -> bool:
        """supervisord answers on its socket and runs (it stops answering once shutting down)."""
        if not self.layout.supervisord_socket.exists():
            return False
        try:
            return self._proxy().supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return False

    def daemon_pid(self) -> int | None:
        """The pid of this home's supervisord while its process lives (running or stopping)."""
        try:
            pid = int(self.layout.supervisord_pidfile.read_text().strip())
            # A pidfile left by a killed supervisord may name a pid reused since.
            alive = b"supervisord" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if alive else None

    def start_daemon(self) -> None:
        """Start supervisord (it daemonises itself) unless it runs already; wait for its socket."""
        if self.is_running():
            return
        if self.daemon_pid() is not None:  # still shutting down: wait, or it would be two
            self.shutdown()
        self.layout.run.mkdir(parents=True, exist_ok=True)
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        # A socket left by a killed supervisord would make the new one refuse to start.
        self.layout.supervisord_socket.unlink(missing_ok=True)
        done = subprocess.run(supervisord_argv(self.layout), capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise StackError(f"supervisord did not start: {(done.stderr or done.stdout).strip()}",
                             service="supervisord")

        try:
            poll(self.is_running, until=bool, timeout_s=20, every_s=0.25)
        except PollTimeoutError as e:
            raise StackError("supervisord did not answer on its socket within 20 s",
                             service="supervisord") from e

    def reload_config(self) -> None:
        """Pick up a regenerated supervisord.conf for programs that are not running."""
        added, changed, removed = self._proxy().supervisor.reloadConfig()[0]
        proxy = self._proxy()
        for name in removed:
            proxy.supervisor.removeProcessGroup(name)
        for name in changed:
            if self.info(name).state not in ("RUNNING", "STARTING"):
                proxy.supervisor.removeProcessGroup(name)
                proxy.supervisor.addProcessGroup(name)
        for name in added:
            proxy.supervisor.addProcessGroup(name)

    def info(self, name: str) -> ProcessInfo:
        raw = self._proxy().supervisor.getProcessInfo(name)
        return ProcessInfo(raw["name"], raw["statename"], raw["pid"], raw["description"])

    def all_info(self) -> dict[str, ProcessInfo]:
        if not self.is_running():
            return {}
        return {raw["name"]: ProcessInfo(raw["name"], raw["statename"], raw["pid"],
                                         raw["description"])
                for raw in self._proxy().supervisor.getAllProcessInfo()}

    def start(self, name: str, *, wait: bool = True) -> None:
        """Start one program unless it runs (or is being restarted: BACKOFF); with `wait`,
        until supervisord counts it as started (its startsecs)."""
        if self.info(name).state in ALIVE:
            return
        try:
            self._proxy().supervisor.startProcess(name, wait)
        except xmlrpc.client.Fault as e:
            raise StackError(f"{name} did not start: {e.faultString}", service=name) from e

    def stop(self, name: str) -> None:
        """Stop one program and wait for it (supervisord's stopwaitsecs bound the wait)."""
        try:
            self._proxy().supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as e:
            raise StackError(f"{name} did not stop: {e.faultString}", service=name) from e

    def shutdown(self, *, timeout_s: float = 180) -> bool:
        """Stop every program and supervisord itself; True if it was running (or stopping:
        a `down` interrupted earlier is waited for, not taken for a stack that is down)."""
        if self.is_running():
            self._proxy().supervisor.shutdown()
        elif self.daemon_pid() is None:
            return False

        try:
            poll(self.daemon_pid, until=lambda pid: pid is None, timeout_s=timeout_s, every_s=0.5)
        except PollTimeoutError as e:
            raise StackError(f"supervisord did not stop within {timeout_s:.0f} s",
                             service="supervisord") from e
        return True
