"""Project rules for connector configs, checked offline: each finding names its file and key."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pipelines.connect.files import ConnectorFile

__all__ = ["RULES", "LintIssue", "is_secret_key", "is_source", "lint_connectors"]

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
         "exactly-once", "unique-slot", "unique-publication")


def lint_connectors(connectors: list[ConnectorFile]) -> list[LintIssue]:
    """Every finding of every rule, in file order."""
    issues = [issue for c in connectors for rule in _PER_CONNECTOR for issue in rule(c)]
    issues.extend(_slots_and_publications(connectors))
    return issues
