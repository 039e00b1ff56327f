"""A small client of the Kafka Connect REST API: every call has a timeout and bounded retries,
and sends the REST user's credentials from Settings (HTTP basic auth)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)
from urllib3.util.retry import Retry

from pipelines.connect.errors import ConnectAuthError, ConnectError, ConnectUnreachableError
from pipelines.polling import PollTimeoutError, poll
from pipelines.settings import Settings

__all__ = ["ConnectClient", "connect_auth", "connect_session"]

log = logging.getLogger(__name__)

TIMEOUT = (3.05, 30)


class _RebalancingError(ConnectError):
    """The worker group is rebalancing (409, or 500 "a rebalance is expected"): try again soon."""


def _q(name: str) -> str:
    return quote(name, safe="")


def connect_auth(settings: Settings) -> tuple[str, str]:
    """The REST user and password Connect asks for; SettingsError when the password has none."""
    return settings.connect_user, settings.password("connect_password")


def _session(auth: tuple[str, str] | None, retries: int) -> requests.Session:
    session = requests.Session()
    session.auth = auth
    # Retry refused connections and 5xx from a worker that is (re)joining its group; not POST/PUT
    # bodies that Connect answered, which are not idempotent in general.
    policy = Retry(total=retries, backoff_factor=0.5, status_forcelist=(502, 503, 504),
                   allowed_methods=None)
    session.mount("http://", HTTPAdapter(max_retries=policy))
    session.mount("https://", HTTPAdapter(max_retries=policy))
    session.headers["Content-Type"] = "application/json"
    return session


def connect_session(settings: Settings, *, retries: int = 3) -> requests.Session:
    """A requests session for Connect's REST API (at settings.connect_url) that sends the REST
    user's credentials: for the few callers that need raw responses; ConnectClient wraps one."""
    return _session(connect_auth(settings), retries)


class ConnectClient:
    """The Connect REST calls seatflow uses."""

    def __init__(self, base_url: str, *, auth: tuple[str, str] | None = None,
                 timeout: tuple[float, float] = TIMEOUT, retries: int = 3,
                 rebalance_wait_s: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.rebalance_wait_s = rebalance_wait_s
        self.session = _session(auth, retries)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> ConnectClient:
        """The client of the Connect at settings.connect_url, with its REST credentials;
        `options` are the constructor's (timeout, retries, rebalance_wait_s)."""
        return cls(settings.connect_url, auth=connect_auth(settings), **options)

    def _call(self, method: str, path: str, body: Any = None,
              ok: tuple[int, ...] = (200, 201, 202, 204)) -> requests.Response:
        # Right after a config change the group rebalances and Connect answers 409 / 500 for a
        # moment; waiting it out keeps every command from failing on a healthy worker.
        retrying = Retrying(retry=retry_if_exception_type(_RebalancingError),
                            stop=stop_after_delay(self.rebalance_wait_s),
                            wait=wait_exponential(multiplier=0.25, max=2), reraise=True)
        return retrying(self._call_once, method, path, body, ok)

    def _call_once(self, method: str, path: str, body: Any,
                   ok: tuple[int, ...]) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            resp = self.session.request(method, url, json=body, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ConnectUnreachableError(f"Kafka Connect is not reachable at {self.base_url}") from e
        if resp.status_code in (401, 403) and resp.status_code not in ok:
            user = self.session.auth[0] if isinstance(self.session.auth, tuple) else None
            who = f"the REST user {user!r}" if user else "a request without credentials"
            raise ConnectAuthError(
                f"{method} {path} -> {resp.status_code}: Kafka Connect at {self.base_url} refused "
                f"{who}; check SEATFLOW_CONNECT_USER and SEATFLOW_CONNECT_PASSWORD (`seatflow "
                "stack secrets` says where the local stack's are)")
        if resp.status_code not in ok:
            try:
                detail = resp.json().get("message", resp.text)
            except ValueError:
                detail = resp.text
            rebalancing = resp.status_code == 409 or (
                resp.status_code == 500 and "rebalance" in str(detail).lower())
            error = _RebalancingError if rebalancing else ConnectError
            raise error(f"{method} {path} -> {resp.status_code}: {detail}")
        return resp

    # -- connectors --------------------------------------------------------------------------

    def connectors(self) -> dict[str, dict[str, Any]]:
        """Every connector: {name: {"config": {...}, "status": {...}}} in one call."""
        resp = self._call("GET", "/connectors?expand=info&expand=status")
        return {name: {"config": item.get("info", {}).get("config", {}),
                       "status": item.get("status", {})}
                for name, item in resp.json().items()}

    def connector_config(self, name: str) -> dict[str, str] | None:
        resp = self._call("GET", f"/connectors/{_q(name)}/config", ok=(200, 404))
        return None if resp.status_code == 404 else resp.json()

    def put_config(self, name: str, config: dict[str, str]) -> None:
        self._call("PUT", f"/connectors/{_q(name)}/config", config)

    def status(self, name: str) -> dict[str, Any] | None:
        resp = self._call("GET", f"/connectors/{_q(name)}/status", ok=(200, 404))
        return None if resp.status_code == 404 else resp.json()

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/connectors/{_q(name)}", ok=(204, 404))

    def pause(self, name: str) -> None:
        self._call("PUT", f"/connectors/{_q(name)}/pause")

    def resume(self, name: str) -> None:
        self._call("PUT", f"/connectors/{_q(name)}/resume")

    def stop(self, name: str) -> None:
        self._call("PUT", f"/connectors/{_q(name)}/stop")

    def restart(self, name: str, *, only_failed: bool = True) -> dict[str, Any] | None:
        """Restart the connector and its tasks (only the failed ones by default)."""
        flag = "true" if only_failed else "false"
        resp = self._call("POST", f"/connectors/{_q(name)}/restart?includeTasks=true&onlyFailed={flag}")
        return resp.json() if resp.status_code == 202 and resp.content else None

    # -- validation and offsets ---------------------------------------------------------------

    def validate(self, connector_class: str, config: dict[str, str]) -> dict[str, Any]:
        """Connect's own validation of a config (PUT /connector-plugins/{class}/config/validate)."""
        resp = self._call("PUT", f"/connector-plugins/{_q(connector_class)}/config/validate", config)
        return resp.json()

    def offsets(self, name: str) -> list[dict[str, Any]]:
        """The committed source offsets of a connector (KIP-875)."""
        return self._call("GET", f"/connectors/{_q(name)}/offsets").json().get("offsets", [])

    def reset_offsets(self, name: str) -> None:
        """Delete every committed offset; the connector must be STOPPED."""
        self._call("DELETE", f"/connectors/{_q(name)}/offsets")

    # -- waiting -------------------------------------------------------------------------------

    def _wait_for(self, name: str, not_yet: Callable[[dict[str, Any] | None], bool], *,
                  timeout_s: float) -> dict[str, Any]:
        """Poll the connector's status until not_yet() is false or time runs out; the last one."""
        try:
            status = poll(lambda: self.status(name), until=lambda st: not not_yet(st),
                          timeout_s=timeout_s, every_s=0.5)
        except PollTimeoutError as e:
            status = e.last
        if status is None:
            raise ConnectError(f"connector {name} does not exist")
        return status

    def wait_state(self, name: str, wanted: str, *, timeout_s: float = 60) -> dict[str, Any]:
        """Wait until the connector's own state is `wanted` (e.g. STOPPED); raise if it is not."""
        status = self._wait_for(
            name, lambda st: st is None or st["connector"]["state"] != wanted, timeout_s=timeout_s)
        if status["connector"]["state"] != wanted:
            raise ConnectError(f"{name} is {status['connector']['state']}, not {wanted}, "
                               f"after {timeout_s:.0f} s")
        return status

    def wait_running(self, name: str, *, timeout_s: float = 60) -> dict[str, Any]:
        """Wait until the connector and all its tasks run; raise naming the failed task."""

        def not_yet(status: dict[str, Any] | None) -> bool:
            if status is None:
                return True
            states = [status["connector"]["state"]] + [t["state"] for t in status["tasks"]]
            return not status["tasks"] or any(s not in ("RUNNING", "FAILED") for s in states)

        status = self._wait_for(name, not_yet, timeout_s=timeout_s)
        for task in status["tasks"]:
            if task["state"] == "FAILED":
                trace = (task.get("trace") or "").strip().splitlines()
                raise ConnectError(f"{name} task {task['id']} failed: {trace[0] if trace else ''}")
        if status["connector"]["state"] != "RUNNING":
            raise ConnectError(f"{name} is {status['connector']['state']}, not RUNNING")
        return status
