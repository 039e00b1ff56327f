"""Project rules for connector configs, checked offline: each finding names its file and key."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.connect.files import ConnectorFile
from pipelines.settings import Settings

__all__ = ["RULES", "LintIssue", "TicketingHost", "is_secret_key", "is_source", "lint_connectors",
           "ticketing_host_issues"]

# Keys whose values are credentials; their values may only be config-provider references.
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|api[._-]?key|jaas\.config"
                         r"|private[._-]?key|keystore\.key|access[._-]?key)", re.IGNORECASE)
_REFERENCE = re.compile(r"\$\{(?P<provider>[A-Za-z0-9_]+):(?P<body>[^}]*)\}")
# What the worker's providers allow (stack/conf/connect-distributed.properties).
_ENV_ALLOWED = re.compile(r"^SEATFLOW_[A-Za-z0-9_]*$")
_PROVIDERS = ("env", "file")
_SOURCE_CLASSES = re.compile(r"(^io\.debezium\.connector\.|SourceConnector$)")
_DEBEZIUM_PG = "io.debezium.connector.postgresql.PostgresConnector"


@dataclass(frozen=True)
class LintIssue:
    rule: str
    path: Path
    connector: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.key}: {self.message} [{self.rule}]"

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "file": str(self.path), "connector": self.connector,
                "key": self.key, "message": self.message}


@dataclass(frozen=True)
class TicketingHost:
    """The one PostgreSQL that connectors may capture from, and what the worker's ${env:...}
    references resolve to when they address it."""

    host: str
    port: int
    # The Connect worker's variables, by name, that connector configs reach as ${env:NAME}.
    env: Mapping[str, str] = field(default_factory=dict)

    # The worker's variables that name the ticketing host (pipelines/stack/configs.py
    # connect_environment(), docker-compose.yml's connect service).
    HOST_VARIABLE = "SEATFLOW_PG_HOST"
    PORT_VARIABLE = "SEATFLOW_PG_PORT"

    @classmethod
    def of(cls, settings: Settings) -> TicketingHost:
        """Settings' ticketing host (pg_host, else bind_host, and pg_port), with the variables
        through which the worker's connector configs address it."""
        host, port = settings.pg_endpoint
        return cls(host, port, cls.variables(host, port))

    @classmethod
    def variables(cls, host: str, port: int) -> dict[str, str]:
        return {cls.HOST_VARIABLE: host, cls.PORT_VARIABLE: str(port)}

    def resolve(self, value: str) -> str | None:
        """`value` with its ${env:NAME} references replaced as the worker would; None when a
        reference cannot be resolved here (another provider, or a name not known to name the
        ticketing host): such a value could point anywhere."""
        unresolved = False

        def one(ref: re.Match[str]) -> str:
            nonlocal unresolved
            if ref["provider"] == "env" and ref["body"] in self.env:
                return self.env[ref["body"]]
            unresolved = True
            return ref[0]

        resolved = _REFERENCE.sub(one, value.strip())
        return None if unresolved else resolved


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def is_source(config: dict[str, str]) -> bool:
    """A source connector, judged offline from its class name."""
    return bool(_SOURCE_CLASSES.search(config.get("connector.class", "")))


def _issue(rule: str, c: ConnectorFile, key: str, message: str) -> LintIssue:
    return LintIssue(rule, c.source_of(key), c.name, key, message)


def _plain_secrets(c: ConnectorFile) -> Iterable[LintIssue]:
    for key, value in c.config.items():
        if is_secret_key(key) and value and _REFERENCE.fullmatch(value.strip()) is None:
            yield _issue("plain-secret", c, key,
                         "holds a plain-text secret; use ${env:SEATFLOW_...} or ${file:PATH:KEY}")


def _provider_scope(c: ConnectorFile) -> Iterable[LintIssue]:
    for key, value in c.config.items():
        for ref in _REFERENCE.finditer(value):
            provider, body = ref["provider"], ref["body"]
            if provider not in _PROVIDERS:
                yield _issue("provider", c, key,
                             f"config provider '{provider}' is not one the worker offers "
                             f"({', '.join(_PROVIDERS)})")
            elif provider == "env" and not _ENV_ALLOWED.match(body):
                yield _issue("provider", c, key,
                             f"${{env:{body}}} is outside the worker's allow-list (SEATFLOW_*)")
            elif provider == "file" and (":" not in body or not body.startswith("/")):
                yield _issue("provider", c, key,
                             f"${{file:{body}}} must be ${{file:/absolute/path:KEY}}")


def _error_tolerance(c: ConnectorFile) -> Iterable[LintIssue]:
    if is_source(c.config) and c.config.get("errors.tolerance", "none").strip().lower() == "all":
        yield _issue("errors-tolerance", c, "errors.tolerance",
                     "'all' on a source connector drops changes silently; use 'none'")


def _heartbeat(c: ConnectorFile) -> Iterable[LintIssue]:
    if not c.config.get("connector.class", "").startswith("io.debezium."):
        return
    value = c.config.get("heartbeat.interval.ms", "").strip()
    if not value.isdigit() or int(value) <= 0:
        yield _issue("heartbeat", c, "heartbeat.interval.ms",
                     "must be set to a positive number of ms, or an idle slot holds back WAL")


def _topic_prefix(c: ConnectorFile) -> Iterable[LintIssue]:
    if is_source(c.config) and not c.config.get("topic.prefix", "").strip():
        yield _issue("topic-prefix", c, "topic.prefix", "must be set (it names every topic)")


def _exactly_once(c: ConnectorFile) -> Iterable[LintIssue]:
    if is_source(c.config) and c.config.get("exactly.once.support", "") != "required":
        yield _issue("exactly-once", c, "exactly.once.support",
                     "must be 'required', so the worker refuses to run it without transactions")


def _file_name(c: ConnectorFile) -> Iterable[LintIssue]:
    if c.path.stem != c.name:
        yield _issue("file-name", c, "name", f"'{c.name}' does not match the file name "
                                             f"'{c.path.name}' (one file per connector)")


# Debezium's default for database.port when a config leaves it out.
_DEFAULT_PG_PORT = "5432"


def _captures_a_database(c: ConnectorFile) -> bool:
    return c.config.get("connector.class") == _DEBEZIUM_PG or "database.hostname" in c.config


def _ticketing_host(c: ConnectorFile, ticketing: TicketingHost) -> Iterable[LintIssue]:
    """database.hostname and database.port, resolved as the worker would, are the ticketing
    host's. Connect's validation (PUT .../config/validate) already logs in to the database a
    config names, with the credentials it resolves: a config aimed elsewhere must never reach
    Connect at all."""
    if not _captures_a_database(c):
        return
    expected = {"database.hostname": ticketing.host, "database.port": str(ticketing.port)}
    for key, want in expected.items():
        value = c.config.get(key)
        if value is None and key == "database.port":
            value, shown = _DEFAULT_PG_PORT, f"not set (Debezium's default {_DEFAULT_PG_PORT})"
        elif value is None:
            yield _issue("ticketing-host", c, key,
                         f"connector {c.name}: {key} is not set; expected the ticketing host "
                         f"'{want}'")
            continue
        else:
            shown = f"'{value}'"
        resolved = ticketing.resolve(value)
        if resolved is None:
            yield _issue("ticketing-host", c, key,
                         f"connector {c.name}: {key} is {shown}, which cannot be resolved here "
                         f"(only ${{env:{TicketingHost.HOST_VARIABLE}}}, "
                         f"${{env:{TicketingHost.PORT_VARIABLE}}} or a plain value); expected "
                         f"the ticketing host's '{want}'")
        elif resolved.strip().lower() != want.lower():
            via = "" if resolved == value.strip() else f", resolving to '{resolved}'"
            yield _issue("ticketing-host", c, key,
                         f"connector {c.name}: {key} is {shown}{via}; expected the ticketing "
                         f"host's '{want}' (SEATFLOW_PG_HOST, else SEATFLOW_BIND_HOST, and "
                         "SEATFLOW_PG_PORT)")


def ticketing_host_issues(connectors: list[ConnectorFile],
                          ticketing: TicketingHost) -> list[LintIssue]:
    """The ticketing-host rule alone: connectors that would capture from another database."""
    return [issue for c in connectors for issue in _ticketing_host(c, ticketing)]


def _slots_and_publications(connectors: list[ConnectorFile]) -> Iterable[LintIssue]:
    """Replication slots and publications: set explicitly and used by one connector only."""
    defaults = {"slot.name": "debezium", "publication.name": "dbz_publication"}
    for key, default in defaults.items():
        users: dict[str, list[ConnectorFile]] = defaultdict(list)
        for c in connectors:
            if c.config.get("connector.class") != _DEBEZIUM_PG:
                continue
            if not c.config.get(key, "").strip():
                yield _issue(f"unique-{key.split('.')[0]}", c, key,
                             f"must be set (Debezium's default '{default}' would be shared)")
                continue
            users[c.config[key].strip()].append(c)
        for value, sharing in users.items():
            if len(sharing) > 1:
                names = ", ".join(s.name for s in sharing)
                for c in sharing:
                    yield _issue(f"unique-{key.split('.')[0]}", c, key,
                                 f"'{value}' is used by several connectors ({names})")


_PER_CONNECTOR: tuple[Callable[[ConnectorFile], Iterable[LintIssue]], ...] = (
    _file_name, _plain_secrets, _provider_scope, _error_tolerance, _heartbeat, _topic_prefix,
    _exactly_once,
)
RULES = ("file-name", "plain-secret", "provider", "errors-tolerance", "heartbeat", "topic-prefix",
         "exactly-once", "ticketing-host", "unique-slot", "unique-publication")


def lint_connectors(connectors: list[ConnectorFile], *,
                    ticketing: TicketingHost) -> list[LintIssue]:
    """Every finding of every rule, in file order; `ticketing` is where connectors may capture
    from (TicketingHost.of(settings))."""
    issues = [issue for c in connectors
              for found in (*(rule(c) for rule in _PER_CONNECTOR), _ticketing_host(c, ticketing))
              for issue in found]
    issues.extend(_slots_and_publications(connectors))
    return issues
