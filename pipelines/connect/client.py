"""A small client of the Kafka Connect REST API and the deploy of connectors/ files."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, retry, retry_if_result, stop_after_delay, wait_fixed
from urllib3.util.retry import Retry

from pipelines.settings import PROJECT_ROOT

__all__ = [
    "CONNECTORS_DIR",
    "ConnectClient",
    "ConnectError",
    "ConnectorFile",
    "apply_connector",
    "load_connector_file",
]

log = logging.getLogger(__name__)

CONNECTORS_DIR = PROJECT_ROOT / "connectors"
TIMEOUT = (3.05, 30)


class ConnectError(RuntimeError):
    """Kafka Connect refused a request or cannot be reached."""


@dataclass(frozen=True)
class ConnectorFile:
    path: Path
    name: str
    config: dict[str, str]


def load_connector_file(path: Path) -> ConnectorFile:
    """Read connectors/<name>.json: {"name": ..., "config": {...}} with string values."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConnectError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise ConnectError(f"{path}: expected an object with a string 'name'")
    config = doc.get("config")
    if not isinstance(config, dict) or not config:
        raise ConnectError(f"{path}: 'config' must be a non-empty object")
    bad = [k for k, v in config.items() if not isinstance(v, str)]
    if bad:
        raise ConnectError(f"{path}: config values must be strings: {', '.join(bad)}")
    return ConnectorFile(path=path, name=doc["name"], config=config)


class ConnectClient:
    """The Connect REST calls seatflow uses; every call has a timeout and bounded retries."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        retries = Retry(total=3, backoff_factor=0.5, status_forcelist=(502, 503, 504),
                        allowed_methods=None)
        self.session.mount("http://", HTTPAdapter(max_retries=retries))
        self.session.headers["Content-Type"] = "application/json"

    def _call(self, method: str, path: str, body: Any = None,
              ok: tuple[int, ...] = (200, 201, 202, 204)) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            resp = self.session.request(method, url, json=body, timeout=TIMEOUT)
        except requests.ConnectionError as e:
            raise ConnectError(f"Kafka Connect is not reachable at {self.base_url}") from e
        if resp.status_code not in ok:
            try:
                detail = resp.json().get("message", resp.text)
            except ValueError:
                detail = resp.text
            raise ConnectError(f"{method} {path} -> {resp.status_code}: {detail}")
        return resp

    def connector_config(self, name: str) -> dict[str, str] | None:
        resp = self._call("GET", f"/connectors/{name}/config", ok=(200, 404))
        return None if resp.status_code == 404 else resp.json()

    def put_config(self, name: str, config: dict[str, str]) -> None:
        self._call("PUT", f"/connectors/{name}/config", config)

    def status(self, name: str) -> dict[str, Any] | None:
        resp = self._call("GET", f"/connectors/{name}/status", ok=(200, 404))
        return None if resp.status_code == 404 else resp.json()

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/connectors/{name}", ok=(204, 404))

    def wait_running(self, name: str, *, timeout_s: float = 60) -> dict[str, Any]:
        """Wait until the connector and all its tasks run; raise naming the failed task."""

        def not_yet(status: dict[str, Any] | None) -> bool:
            if status is None:
                return True
            states = [status["connector"]["state"]] + [t["state"] for t in status["tasks"]]
            return not status["tasks"] or any(s not in ("RUNNING", "FAILED") for s in states)

        def last_status(state: RetryCallState) -> dict[str, Any] | None:
            return state.outcome.result() if state.outcome else None

        fetch = retry(retry=retry_if_result(not_yet), stop=stop_after_delay(timeout_s),
                      wait=wait_fixed(0.5), retry_error_callback=last_status)(self.status)
        status = fetch(name)
        if status is None:
            raise ConnectError(f"connector {name} does not exist")
        for task in status["tasks"]:
            if task["state"] == "FAILED":
                trace = (task.get("trace") or "").strip().splitlines()
                raise ConnectError(f"{name} task {task['id']} failed: {trace[0] if trace else ''}")
        if status["connector"]["state"] != "RUNNING":
            raise ConnectError(f"{name} is {status['connector']['state']}, not RUNNING")
        return status


def apply_connector(client: ConnectClient, file: ConnectorFile) -> Literal["created", "updated", "unchanged"]:
    """Create or update one connector from its file; unchanged configs are not touched."""
    current = client.connector_config(file.name)
    wanted = {**file.config, "name": file.name}
    if current == wanted:
        return "unchanged"
    client.put_config(file.name, wanted)
    log.info("%s connector %s", "updated" if current else "created", file.name)
    return "updated" if current else "created"
