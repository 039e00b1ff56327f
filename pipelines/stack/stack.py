"""The local stack as a whole: up, down, status, logs and reset."""

from __future__ import annotations

import logging
import re
import shutil
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipelines.polling import PollTimeoutError, poll
from pipelines.settings import Settings, generated_secrets_file
from pipelines.stack import health, kafka, postgres
from pipelines.stack.configs import APPS, private_folder, render_all, supervisord_conf, write_private
from pipelines.stack.errors import StackError
from pipelines.stack.java import ensure_artifacts, find_java, find_registry_java
from pipelines.stack.layout import StackLayout
from pipelines.stack.registry import write_registry_users
from pipelines.stack.secrets import ensure_secrets, with_generated_secrets
from pipelines.stack.supervisor import ALIVE, Supervisor
from pipelines.stack.trust import require_trusted

__all__ = [
    "SERVICES",
    "Reporter",
    "Service",
    "ServiceStatus",
    "apps_status",
    "down",
    "log_tail",
    "reset",
    "start_app",
    "status",
    "stop_app",
    "up",
]

log = logging.getLogger(__name__)

CONNECT_USERS_FILE = "connect-users.properties"


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    port: Callable[[Settings], int]
    # How long a cold start may take on a 2-core machine before `up` gives up.
    start_timeout_s: float


# In start order: each needs the ones before it.
SERVICES = (
    Service("postgres", lambda s: s.pg_port, 60),
    Service("controller", lambda s: s.kafka_controller_port, 120),
    Service("kafka", lambda s: s.kafka_port, 120),
    Service("registry", lambda s: s.registry_port, 180),
    Service("connect", lambda s: s.connect_port, 300),
)
SERVICE_NAMES = tuple(s.name for s in SERVICES)
# The setting of each service's port where it is not SEATFLOW_<NAME>_PORT.
PORT_SETTINGS = {"postgres": "SEATFLOW_PG_PORT", "controller": "SEATFLOW_KAFKA_CONTROLLER_PORT"}


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    port: int
    state: str
    problem: str | None  # None when healthy

    @property
    def healthy(self) -> bool:
        return self.problem is None


class Reporter(Protocol):
    """Where `up` tells what it is doing (the CLI shows it with rich)."""

    def step(self, text: str) -> None: ...  # a transient "now doing" line

    def done(self, text: str) -> None: ...  # a finished step


class _Quiet:
    def step(self, text: str) -> None:
        log.debug(text)

    def done(self, text: str) -> None:
        log.info(text)


def log_tail(layout: StackLayout, service: str, lines: int = 40) -> str:
    path = layout.log_of(service)
    if not path.exists():
        return ""
    with path.open(errors="replace") as f:
        return "".join(deque(f, maxlen=lines))


def _properties_value(value: str) -> str:
    """A value as java.util.Properties.load reads it back unchanged."""
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return "\\" + escaped if escaped[:1] in (" ", "\t", "\f") else escaped


def _write_secrets(settings: Settings, layout: StackLayout) -> None:
    """The users file of Connect's REST API (stack/conf/connect-jaas.conf names it). Connector
    configs take the Debezium login from ${env:...}; the file provider reads only Connect's own
    Kafka login and the connectors' folder (stack/conf/connect-distributed.properties), which must
    exist when Connect starts."""
    private_folder(layout.secrets)
    private_folder(layout.connector_secrets)
    # One user. Kafka's PropertyFileLoginModule lets every request through when this file is
    # empty, so it never is: the password is generated at the first `up` (or given).
    write_private(layout.secrets / CONNECT_USERS_FILE,
                  f"{settings.connect_user}="
                  f"{_properties_value(settings.password('connect_password'))}\n")


def _downloaded(line: str) -> str | None:
    match = re.search(r"Downloaded from \S+: \S+/([^/\s]+) \(", line)
    return match.group(1) if match else None


def _wait_healthy(service: Service, settings: Settings, sup: Supervisor) -> None:
    def probe() -> str | None:
        state = sup.info(service.name).state
        # BACKOFF: it died while starting and supervisord tries again (a bounded number of
        # times, then FATAL).
        if state not in ALIVE:
            raise StackError(f"{service.name} stopped while starting (state {state})",
                             service=service.name)
        if state == "BACKOFF":
            return "restarting after a failed start"
        return health.check(service.name, settings)

    try:
        poll(probe, until=lambda problem: problem is None, timeout_s=service.start_timeout_s)
    except PollTimeoutError as e:
        raise StackError(f"{service.name} not healthy after {service.start_timeout_s:.0f} s: "
                         f"{e.last}", service=service.name) from e


def up(settings: Settings, reporter: Reporter | None = None) -> Settings:
    """Fetch artifacts if needed, then start PostgreSQL, Kafka, registry and Connect in order.
    The settings with the stack's generated passwords (the first `up` generates them)."""
    rep = reporter or _Quiet()
    layout = StackLayout.of(settings)
    java = find_java()
    registry_java = find_registry_java()
    require_trusted([("SEATFLOW_PG_BIN_DIR", settings.pg_bin_dir),
                     ("the Java of Kafka and Connect", java.resolve().parent),
                     ("the registry's Java", registry_java.resolve().parent),
                     ("SEATFLOW_CACHE_DIR, the services' jars", settings.cache_dir)])
    postgres.ensure_installed(settings)
    if ensure_secrets(settings):
        rep.done(f"Generated the stack's passwords into {generated_secrets_file(settings.home)}")
    settings = with_generated_secrets(settings)

    rep.step("Checking the Java artifacts in the cache")
    count = 0

    def on_maven_line(line: str) -> None:
        nonlocal count
        name = _downloaded(line)
        if name:
            count += 1
            rep.step(f"Fetching Java artifacts with Maven: {count} files ({name})")

    if ensure_artifacts(layout, on_line=on_maven_line, maven_log=layout.logs / "maven.log"):
        rep.done(f"Fetched Java artifacts ({count} downloads)")
    else:
        rep.done("Java artifacts already in the cache")

    render_all(settings, layout)
    _write_secrets(settings, layout)
    kafka.write_kafka_secrets(settings, layout)
    layout.registry_work.mkdir(parents=True, exist_ok=True)
    write_registry_users(settings, layout)
    layout.logs.mkdir(parents=True, exist_ok=True)
    write_private(layout.supervisord_conf, supervisord_conf(settings, layout, java, registry_java))
    if postgres.prepare_cluster(settings, layout):
        rep.done("Initialised the PostgreSQL cluster")
    if kafka.format_storage(java, layout, settings):
        rep.done("Formatted Kafka's KRaft storage")

    sup = Supervisor(layout)
    sup.start_daemon()
    sup.reload_config()
    for service in SERVICES:
        port = service.port(settings)
        already = sup.info(service.name).state in ALIVE
        rep.step(f"{'Checking' if already else 'Starting'} {service.name} on port {port}")
        try:
            if not already:
                if health.listening(settings.bind_host, port):
                    env = PORT_SETTINGS.get(service.name, f"SEATFLOW_{service.name.upper()}_PORT")
                    raise StackError(
                        f"port {settings.bind_host}:{port} is taken by a process this stack "
                        f"did not start; stop it or choose another port "
                        f"({env})",
                        service=service.name, log_tail="-")
                # Not waiting for supervisord's startsecs: the health probe below is the
                # real wait, and it sees a process that dies while starting.
                sup.start(service.name, wait=False)
            _wait_healthy(service, settings, sup)
            if service.name == "postgres":
                postgres.bootstrap(settings)
            if service.name == "kafka":
                # Before Connect starts: without its ACLs the worker could not read its topics.
                kafka.grant_acls(settings)
        except StackError as e:
            e.service = e.service or service.name
            e.log_tail = "" if e.log_tail == "-" else (e.log_tail or log_tail(layout, service.name))
            raise
        rep.done(f"{service.name} {'already running' if already else 'started'} "
                 f"on {settings.bind_host}:{port}")
    return settings


def down(settings: Settings) -> bool:
    """Stop what `up` started (supervisord and its programs); False if nothing ran."""
    return Supervisor(StackLayout.of(settings)).shutdown()


def status(settings: Settings) -> list[ServiceStatus]:
    layout = StackLayout.of(settings)
    infos = Supervisor(layout).all_info()
    rows = []
    for service in SERVICES:
        info = infos.get(service.name)
        state = info.state if info else "STOPPED"
        # STARTING: running, but not yet for its startsecs (just started or restarted).
        problem = (health.check(service.name, settings) if state in ("RUNNING", "STARTING")
                   else "restarting" if state == "BACKOFF" else "not running")
        rows.append(ServiceStatus(service.name, service.port(settings), state, problem))
    return rows


def start_app(settings: Settings, name: str) -> None:
    """Start one of seatflow's own programs (processor, dagster) under the stack's supervisord."""
    layout = StackLayout.of(settings)
    if name == "dagster":
        dagster_home = layout.home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        # Run monitoring marks a run whose worker died as failed, so the stream keeper
        # sensor restarts it.
        (dagster_home / "dagster.yaml").write_text(
            "run_monitoring:\n  enabled: true\n  poll_interval_seconds: 30\n"
            "telemetry:\n  enabled: false\n")
    sup = Supervisor(layout)
    if not sup.is_running():
        raise StackError(f"cannot start {name}: the stack is not up (seatflow stack up)",
                         service=name)
    sup.start(name)

    # A program that was already being restarted (BACKOFF) is left to supervisord's retries:
    # wait for their outcome.
    try:
        state = poll(lambda: sup.info(name).state,
                     until=lambda state: state not in ("STARTING", "BACKOFF"),
                     timeout_s=60, every_s=0.5)
    except PollTimeoutError as e:
        state = e.last
    if state != "RUNNING":
        raise StackError(f"{name} is {state} after starting", service=name,
                         log_tail=log_tail(layout, name))


def stop_app(settings: Settings, name: str) -> bool:
    """Stop one of seatflow's own programs if it runs; True if it was running."""
    sup = Supervisor(StackLayout.of(settings))
    if not sup.is_running() or sup.info(name).state not in ALIVE:
        return False
    sup.stop(name)
    return True


def apps_status(settings: Settings) -> dict[str, str]:
    """State of seatflow's own programs, for those supervisord knows."""
    infos = Supervisor(StackLayout.of(settings)).all_info()
    return {name: infos[name].state for name in APPS if name in infos}


def reset(settings: Settings) -> list[Path]:
    """Stop the stack and wipe its home (data, logs, configs); the artifact cache stays."""
    layout = StackLayout.of(settings)
    down(settings)
    removed = []
    if layout.home.exists():
        for child in layout.home.iterdir():
            if layout.cache == child or layout.cache.is_relative_to(child):
                continue  # never the cache, even when it lives under home
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
            removed.append(child)
    return removed
