"""Rendering the config templates of stack/conf and the supervisord.conf that runs it all."""

from __future__ import annotations

import getpass
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

from pipelines.connect.lint import TicketingHost
from pipelines.processor.supervise import SUPERVISE_MODULE
from pipelines.serve import SERVE_MODULE
from pipelines.settings import PROJECT_ROOT, Settings
from pipelines.stack.errors import StackError
from pipelines.stack.layout import (
    STACK_DIR,
    StackLayout,
    registry_management_port,
    running_as_root,
)

__all__ = [
    "CONF_TEMPLATES",
    "RESTART",
    "Restart",
    "connect_environment",
    "java_command",
    "placeholders",
    "render",
    "render_all",
    "supervisord_argv",
    "supervisord_conf",
    "write_private",
]

TEMPLATES_DIR = STACK_DIR / "conf"
CONF_TEMPLATES = (
    "controller.properties",
    "server.properties",
    "connect-distributed.properties",
    "log4j2.properties",
    "apicurio-registry.properties",
    "postgresql.conf",
    "pg_hba.conf",
    "pg_ident.conf",
    "connect-jaas.conf",
)
# Modest heaps: everything shares 2 cores with the tests. G1 sizes the young generation to its
# pause goal: at 50 ms the broker's pauses every few seconds of an on-sale held up every record
# in flight (docs/performance.md); 20 ms is Kafka's own default (kafka-run-class.sh).
HEAPS = {"controller": "-Xms64m -Xmx256m", "kafka": "-Xms256m -Xmx768m",
         "connect": "-Xms256m -Xmx768m", "registry": "-Xmx512m"}
JVM_FLAGS = "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true"
PG_OS_USER = "postgres"


@dataclass(frozen=True, slots=True)
class Restart:
    """How supervisord restarts a program that dies on its own (never one it stopped itself:
    `stack down` and `stop_app` stop programs through supervisord, which restarts none of them).

    supervisord's model, as systemd's Restart=on-failure with StartLimitBurst: a program that
    exits unexpectedly (a signal, or an exit code other than 0) after it has run `startsecs` is
    restarted at once. One that dies before `startsecs` has not started: it is tried again after
    1 s, 2 s, 3 s, ... (supervisord's BACKOFF) and, after `startretries` such tries, given up
    (FATAL), so a service that cannot start (a broken config, a port taken) stops flapping.
    """

    # A process that lives this long counts as started: long enough for a JVM to read its
    # config, bind its ports and open its storage, where start-up failures happen.
    startsecs: int
    startretries: int = 5
    # "true": any exit that supervisord did not ask for is restarted, as systemd's
    # Restart=always. Not "unexpected" (Restart=on-failure): PostgreSQL's postmaster exits
    # with 0 after an immediate shutdown (`pg_ctl stop -m immediate`, its crash-stop), and
    # would stay down. A service of the stack runs until the stack stops it.
    autorestart: str = "true"

    def conf(self) -> str:
        return (f"autorestart={self.autorestart}\nstartsecs={self.startsecs}\n"
                f"startretries={self.startretries}\nexitcodes=0\n")


RESTART = {
    "postgres": Restart(startsecs=3),
    "controller": Restart(startsecs=10),
    "kafka": Restart(startsecs=10),
    "registry": Restart(startsecs=10),
    "connect": Restart(startsecs=10),
    # The processor's transactions make a restart safe; it starts in a second or two. It
    # exits 0 only when asked to stop (SIGTERM), and then stays stopped.
    "processor": Restart(startsecs=2, autorestart="unexpected"),
    # serve holds nothing it cannot read again from the topics: restarted as the processor is,
    # and it exits 0 only when asked to stop.
    "serve": Restart(startsecs=2, autorestart="unexpected"),
}


def placeholders(settings: Settings, layout: StackLayout) -> dict[str, str]:
    """Values of the ${NAME} placeholders in stack/conf."""
    return {
        "BIND_HOST": settings.bind_host,
        "PG_PORT": str(settings.pg_port),
        "PG_SOCKET_DIR": str(layout.pg_socket_dir),
        "PG_OS_USER": PG_OS_USER if running_as_root() else _current_user(),
        "PG_SUPERUSER": settings.pg_superuser,
        # Who runs `seatflow` (and so the migrations and checks): the superuser's peer login.
        "RUN_AS_USER": _current_user(),
        "KAFKA_PORT": str(settings.kafka_port),
        "KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "KAFKA_DATA_DIR": str(layout.kafka_data),
        "KAFKA_CONTROLLER_DATA_DIR": str(layout.controller_data),
        "CONNECT_PORT": str(settings.connect_port),
        "PLUGIN_PATH": str(layout.connect_plugins),
        "SECRETS_DIR": str(layout.secrets),
        "CONNECTOR_SECRETS_DIR": str(layout.connector_secrets),
        "KAFKA_SECRETS_DIR": str(layout.kafka_secrets),
        "REGISTRY_PORT": str(settings.registry_port),
        "REGISTRY_MANAGEMENT_PORT": str(registry_management_port(settings)),
        "REGISTRY_DATABASE": settings.pg_registry_database,
        "REGISTRY_USER": settings.pg_registry_user,
        "REGISTRY_PASSWORD": settings.password("pg_registry_password"),
    }


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ${NAME} placeholders; refuse unknown names, leave foreign ${a:b} lookups alone."""
    tpl = Template(template)
    missing = set(tpl.get_identifiers()) - set(values)
    if missing:
        raise StackError(f"config template uses unknown placeholders: {sorted(missing)}")
    return tpl.safe_substitute(values)


def render_all(settings: Settings, layout: StackLayout) -> dict[str, Path]:
    """Render every template into <home>/conf (mode 0600: some hold passwords)."""
    layout.conf.mkdir(parents=True, exist_ok=True)
    values = placeholders(settings, layout)
    written: dict[str, Path] = {}
    for name in CONF_TEMPLATES:
        target = layout.conf / name
        write_private(target, render((TEMPLATES_DIR / name).read_text(), values))
        written[name] = target
    return written


def connect_environment(settings: Settings) -> dict[str, str]:
    """Variables that connector configs reach through ${env:...} (allow-listed ^SEATFLOW_).
    Never the REST user's password: a connector config could read it back."""
    host, port = settings.pg_endpoint
    return {
        # The ticketing host, SEATFLOW_PG_HOST and SEATFLOW_PG_PORT: the only database that
        # connectors may capture from (lint's ticketing-host rule resolves them the same way).
        **TicketingHost.variables(host, port),
        "SEATFLOW_PG_DATABASE": settings.pg_database,
        "SEATFLOW_DEBEZIUM_USER": settings.pg_debezium_user,
        "SEATFLOW_DEBEZIUM_PASSWORD": settings.password("pg_debezium_password"),
        # Apicurio's Connect converter on Maven Central is the 2.6 line: it speaks the v2 API.
        "SEATFLOW_REGISTRY_URL": f"{settings.registry_url}/apis/registry/v2",
        "SEATFLOW_REGISTRY_V3_URL": f"{settings.registry_url}/apis/registry/v3",
        "SEATFLOW_REGISTRY_CCOMPAT_URL": settings.ccompat_url,
        # The converter registers the CDC topics' schemas: it logs in as the registry's writer.
        "SEATFLOW_REGISTRY_WRITER_USER": "writer",
        "SEATFLOW_REGISTRY_WRITER_PASSWORD": settings.password("registry_writer_password"),
        # PartitionRouting's partition.topic.num: the seat-inventory topic's partitions.
        "SEATFLOW_PARTITIONS": str(settings.partitions),
    }


def java_command(java: Path, layout: StackLayout, service: str) -> list[str]:
    """The foreground command line of one JVM service."""
    log4j = f"-Dlog4j2.configurationFile={layout.conf / 'log4j2.properties'}"
    flags = [*HEAPS[service].split(), *JVM_FLAGS.split()]
    classpath = f"{layout.kafka_libs}/*"  # expanded by the JVM, not by a shell
    if service in ("controller", "kafka"):
        properties = "controller.properties" if service == "controller" else "server.properties"
        return [str(java), *flags, log4j, "-cp", classpath, "kafka.Kafka",
                str(layout.conf / properties)]
    if service == "connect":
        # The JAAS login of the REST API's basic auth (BasicAuthSecurityRestExtension): the
        # KafkaConnect entry reads <home>/secrets/connect-users.properties.
        jaas = f"-Djava.security.auth.login.config={layout.conf / 'connect-jaas.conf'}"
        return [str(java), *flags, log4j, jaas, "-cp", classpath,
                "org.apache.kafka.connect.cli.ConnectDistributed",
                str(layout.conf / "connect-distributed.properties")]
    if service == "registry":
        # Its JVM start is all of a registry restart, a long one under an on-sale's load
        # (stack/NOTES.md): a class data archive of its own, written when it exits cleanly and
        # read by every start after (Java 19+; the registry needs 21), and the quick C1 compiler
        # only (it serves a few schema lookups, never a hot loop).
        # Its config, and its users (digests and roles) from the secrets folder of its own that
        # `up` writes them to (pipelines/stack/registry.py).
        archive = layout.registry_work / "app-cds.jsa"
        locations = [layout.conf / "apicurio-registry.properties",
                     layout.registry_secrets / "registry-users.properties"]
        return [str(java), *flags, "-XX:TieredStopAtLevel=1", "-XX:+AutoCreateSharedArchive",
                f"-XX:SharedArchiveFile={archive}",
                f"-Dquarkus.config.locations={','.join(map(str, locations))}",
                "-jar", str(layout.registry_dir / "quarkus-run.jar")]
    raise StackError(f"unknown JVM service {service!r}")


def supervisord_conf(settings: Settings, layout: StackLayout, java: Path,
                     registry_java: Path) -> str:
    """supervisord.conf: one program per service, none started automatically (up orders them)."""
    sock, logs = layout.supervisord_socket, layout.logs
    sections = [
        f"""[unix_http_server]
file={_esc(str(sock))}
chmod=0700

[supervisord]
logfile={_esc(str(logs / 'supervisord.log'))}
logfile_maxbytes=10MB
logfile_backups=2
pidfile={_esc(str(layout.supervisord_pidfile))}
childlogdir={_esc(str(logs))}
directory={_esc(str(layout.home))}
identifier=seatflow
nodaemon=false
minfds=16384

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{_esc(str(sock))}
"""
    ]
    pg_user = f"user={PG_OS_USER}\n" if running_as_root() else ""
    postgres = [str(settings.pg_bin_dir / "postgres"), "-D", str(layout.pg_data)]
    sections.append(_program("postgres", postgres, layout, extra=pg_user + (
        # SIGINT is PostgreSQL's fast shutdown; only the postmaster gets it.
        "stopsignal=INT\nstopwaitsecs=60\n"
    ), directory=layout.pg_root, restart=RESTART["postgres"]))
    for service in ("controller", "kafka", "registry", "connect"):
        env = connect_environment(settings) if service == "connect" else {}
        directory = layout.registry_work if service == "registry" else layout.home
        jvm = registry_java if service == "registry" else java
        sections.append(_program(service, java_command(jvm, layout, service), layout,
                                 extra="stopsignal=TERM\nstopwaitsecs=90\nkillasgroup=true\n",
                                 env=env, directory=directory, restart=RESTART[service]))
    sections.extend(_app_program(name, settings, layout) for name in APPS)
    return "\n".join(sections)


# supervisord's priority per program: `down` (supervisord's shutdown) stops the highest first
# and waits for it before the next, so each program stops while what it needs still runs.
# All at one priority, Connect lost the broker in its clean shutdown and waited out its
# stopwaitsecs (90 s) to be killed; the broker's asks the controller to move its leaderships.
# (`up` starts the services itself, in its own order: none autostarts.)
STOP_ORDER = {"controller": 10, "postgres": 20, "kafka": 30, "registry": 40, "connect": 50,
              "processor": 60, "serve": 60, "dagster": 60}

# seatflow's own long-running programs: supervised like the services, but started on demand
# (`seatflow demo`), not by `up`; `down` stops them with the rest.
APPS = ("processor", "dagster", "serve")
# The Kafka principal (pipelines/kafka/acls.py) and the registry user (REGISTRY_PRINCIPALS)
# each program logs in as: Settings finds their passwords among the stack's generated ones, so
# none is written here. Both only look schemas up: the registry's reader. Dagster runs jobs of
# every kind (backfills, checks): it logs in as admin, Settings' default, and its processor
# runs log in to Kafka as processor (Settings.as_principal).
APP_LOGINS = {"processor": {"SEATFLOW_KAFKA_USERNAME": "processor",
                            "SEATFLOW_REGISTRY_USERNAME": "reader"},
              "serve": {"SEATFLOW_KAFKA_USERNAME": "reader",
                        "SEATFLOW_REGISTRY_USERNAME": "reader"}}


def _app_program(name: str, settings: Settings, layout: StackLayout) -> str:
    python = sys.executable
    if name == "processor":
        # The worker and its warm standby, supervised as in a Dagster run; supervisord restarts
        # the parent should it die.
        command = [python, "-m", SUPERVISE_MODULE]
        env: dict[str, str] = {**APP_LOGINS["processor"]}
    elif name == "serve":
        # On the settings' bind_host and serve_port (python -m pipelines.serve reads them).
        command = [python, "-m", SERVE_MODULE]
        env = {**APP_LOGINS["serve"]}
    else:
        command = [python, "-m", "dagster", "dev", "-m", "pipelines.definitions",
                   "-h", settings.bind_host, "-p", str(settings.dagster_port)]
        # The code location's resource reads the password as Settings does: environment first.
        env = {"DAGSTER_HOME": str(layout.home / "dagster"),
               "SEATFLOW_PG_APP_PASSWORD": settings.password("pg_app_password")}
    extra = "stopsignal=TERM\nstopwaitsecs=30\nkillasgroup=true\nstopasgroup=true\n"
    # Dagster is not restarted: `seatflow demo` starts it, and its daemon keeps the runs.
    return _program(name, command, layout, extra=extra, env=env, directory=PROJECT_ROOT,
                    restart=RESTART.get(name))


def _program(name: str, command: list[str], layout: StackLayout, *, extra: str,
             directory: Path, env: Mapping[str, str] | None = None,
             restart: Restart | None = None) -> str:
    environment = ""
    if env:
        pairs = ",".join(f'{k}="{_env_value(v)}"' for k, v in env.items())
        environment = f"environment={pairs}\n"
    return (
        f"[program:{name}]\n"
        f"priority={STOP_ORDER[name]}\n"
        f"command={_esc(shlex.join(command))}\n"
        f"directory={_esc(str(directory))}\n"
        "autostart=false\n"
        + (restart.conf() if restart else "autorestart=false\nstartsecs=2\nstartretries=0\n") +
        "redirect_stderr=true\n"
        f"stdout_logfile={_esc(str(layout.log_of(name)))}\n"
        "stdout_logfile_maxbytes=50MB\n"
        "stdout_logfile_backups=2\n"
        f"{environment}{extra}"
    )


def _esc(value: str) -> str:
    # supervisord expands %(name)s in values.
    return value.replace("%", "%%")


def _env_value(value: str) -> str:
    return _esc(value.replace("\\", "\\\\").replace('"', '\\"'))


def private_folder(path: Path) -> Path:
    """`path` made if missing, and readable by its owner only (secrets live there)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def plain_password(settings: Settings, field: str, forbidden: str, *, service: str) -> str:
    """The password setting `field`, refused when it holds a character of `forbidden`: one the
    config that carries it would take for syntax (a generated one never does; one given in the
    environment might)."""
    password = settings.password(field)
    if any(c in password for c in forbidden):
        shown = " ".join(repr(c) for c in forbidden)
        raise StackError(f"SEATFLOW_{field.upper()} holds a character that {service}'s configs "
                         f"cannot carry (one of {shown}): use letters, digits, '-' and '_'",
                         service=service)
    return password


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


def _current_user() -> str:
    return getpass.getuser()


def supervisord_argv(layout: StackLayout) -> list[str]:
    """supervisord from this interpreter's environment (it daemonises itself)."""
    return [sys.executable, "-m", "supervisor.supervisord", "-c", str(layout.supervisord_conf)]
