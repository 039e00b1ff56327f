"""The Avro schemas in schemas/ and their registry workflow: check, register, diff.

One .avsc per registry subject (topic-name strategy: <topic>-key, <topic>-value); the
compatibility level of each subject is kept beside them in schemas/compatibility.json.
A schema reaches the registry only through `register_schemas`, which checks every schema first
and registers nothing when one of them breaks; producers only look schemas up.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import fastavro
import requests
from confluent_kafka.schema_registry import RegisteredSchema, Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipelines.avro import ccompat_client
from pipelines.avro.rules import LEVELS, compatibility_problems, lint_problems
from pipelines.errors import SeatflowError
from pipelines.settings import PROJECT_ROOT, Settings

__all__ = [
    "COMPATIBILITY_FILE",
    "SCHEMAS_DIR",
    "CompatibilityLevels",
    "IncompatibleSchemaError",
    "LocalSchema",
    "Registration",
    "SchemaDiff",
    "SchemaError",
    "SchemaRegistry",
    "SubjectCheck",
    "check_schemas",
    "diff_schema",
    "load_compatibility",
    "load_schema",
    "local_schemas",
    "offline_checks",
    "register_schemas",
]

log = logging.getLogger(__name__)

SCHEMAS_DIR = PROJECT_ROOT / "schemas"
COMPATIBILITY_FILE = "compatibility.json"
# Apicurio keeps the subjects of its Confluent-compatible API as artifacts of this group.
CCOMPAT_GROUP = "default"
_NOT_FOUND = 404

Status = Literal["offline", "invalid", "new", "unchanged", "compatible", "incompatible"]


class SchemaError(SeatflowError):
    """A schema or the registry's answer about it is not what seatflow needs."""


class IncompatibleSchemaError(SchemaError):
    """At least one schema breaks its subject's compatibility level; nothing was registered."""

    def __init__(self, checks: list[SubjectCheck]) -> None:
        self.checks = checks
        broken = [c.subject for c in checks if not c.ok]
        super().__init__(f"not registered: {', '.join(broken)} would break compatibility")


@dataclass(frozen=True)
class LocalSchema:
    subject: str
    path: Path
    text: str

    @property
    def parsed(self) -> Any:
        return json.loads(self.text)


def load_schema(subject: str, directory: Path = SCHEMAS_DIR) -> LocalSchema:
    """Read and parse schemas/<subject>.avsc; raises ValueError naming the file when invalid."""
    path = directory / f"{subject}.avsc"
    text = path.read_text(encoding="utf-8")
    try:
        fastavro.parse_schema(json.loads(text))
    except (ValueError, fastavro.schema.SchemaParseException) as e:
        raise ValueError(f"{path}: not a valid Avro schema: {e}") from e
    return LocalSchema(subject=subject, path=path, text=text)


def local_schemas(directory: Path = SCHEMAS_DIR) -> list[LocalSchema]:
    return [load_schema(p.stem, directory) for p in sorted(directory.glob("*.avsc"))]


@dataclass(frozen=True)
class CompatibilityLevels:
    """The compatibility level of each subject, as kept in schemas/compatibility.json."""

    default: str
    subjects: Mapping[str, str] = field(default_factory=dict)

    def level(self, subject: str) -> str:
        return self.subjects.get(subject, self.default)


def load_compatibility(directory: Path = SCHEMAS_DIR) -> CompatibilityLevels:
    """Read schemas/compatibility.json; raises ValueError on an unknown level."""
    path = directory / COMPATIBILITY_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    levels = CompatibilityLevels(default=data["default"], subjects=dict(data.get("subjects", {})))
    for subject, level in [("default", levels.default), *levels.subjects.items()]:
        if level not in LEVELS:
            raise ValueError(f"{path}: {subject}: unknown compatibility level {level!r}; "
                             f"one of {', '.join(sorted(LEVELS))}")
    return levels


@dataclass(frozen=True)
class SubjectCheck:
    """What the registry (and seatflow's own rules) say about one local schema."""

    subject: str
    level: str
    status: Status
    registry_level: str | None = None
    versions: tuple[int, ...] = ()
    # The registered version identical to the local schema, when there is one.
    version: int | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status not in ("invalid", "incompatible")


@dataclass(frozen=True)
class Registration:
    subject: str
    status: Literal["registered", "unchanged"]
    version: int
    schema_id: int
    level: str


@dataclass(frozen=True)
class SchemaDiff:
    subject: str
    latest_version: int | None
    lines: tuple[str, ...]  # unified diff, registered -> local; empty when identical

    @property
    def identical(self) -> bool:
        return self.latest_version is not None and not self.lines


class SchemaRegistry:
    """Apicurio Registry through its Confluent-compatible API, plus its native dry run."""

    def __init__(self, base_url: str, *, timeout: float = 10.0,
                 auth: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.client = ccompat_client(f"{self.base_url}/apis/ccompat/v7", timeout=timeout,
                                     auth=auth)
        self.session = requests.Session()
        self.session.auth = auth

    @classmethod
    def from_settings(cls, settings: Settings) -> SchemaRegistry:
        """The registry of these settings, with its user's credentials (registry_auth)."""
        return cls(settings.registry_url, auth=settings.registry_auth())

    def reachable(self) -> bool:
        try:
            response = self.session.get(f"{self.base_url}/apis/registry/v3/system/info",
                                        timeout=3)
        except requests.RequestException:
            return False
        return response.ok

    def versions(self, subject: str) -> list[int]:
        """Registered versions of subject, oldest first; empty when the subject does not exist."""
        try:
            return sorted(self.client.get_versions(subject))
        except SchemaRegistryError as e:
            if e.http_status_code == _NOT_FOUND:
                return []
            raise

    def version_text(self, subject: str, version: int) -> str:
        return self.client.get_version(subject, version).schema.schema_str or ""

    def level(self, subject: str) -> str | None:
        """The subject's own compatibility level; None when it has none."""
        try:
            return self.client.get_compatibility(subject)
        except SchemaRegistryError as e:
            if e.http_status_code == _NOT_FOUND:
                return None
            raise

    def set_level(self, subject: str, level: str) -> None:
        self.client.set_compatibility(subject, level)

    def lookup(self, subject: str, text: str) -> RegisteredSchema | None:
        """The registered version with exactly this schema, or None."""
        try:
            return self.client.lookup_schema(subject, Schema(text, "AVRO"))
        except SchemaRegistryError as e:
            if e.http_status_code == _NOT_FOUND:
                return None
            raise

    def is_compatible(self, subject: str, text: str) -> bool:
        """The registry's verdict under the subject's current level, against every version."""
        return self.client.test_compatibility_all_versions(subject, Schema(text, "AVRO"))

    def dry_run_problems(self, subject: str, text: str) -> list[str]:
        """Why the registry would refuse this schema, from a dry-run registration (nothing is kept).

        Apicurio's ccompat API ignores ?verbose=true (no messages); its v3 API's dryRun returns
        the rule violation with one cause per incompatibility.
        """
        url = f"{self.base_url}/apis/registry/v3/groups/{CCOMPAT_GROUP}/artifacts/{subject}/versions"
        body = {"content": {"content": text, "contentType": "application/json"}}
        response = self.session.post(url, params={"dryRun": "true"}, json=body,
                                     timeout=self.timeout)
        if response.ok:
            return []
        try:
            detail = response.json()
        except ValueError:
            return [f"HTTP {response.status_code}: {response.text[:500]}"]
        causes = detail.get("causes") or []
        if causes:
            return [f"{c.get('context') or '/'}: {c.get('description')}" for c in causes]
        return [str(detail.get("detail") or detail.get("title") or detail)]

    def register(self, subject: str, text: str) -> int:
        return self.client.register_schema(subject, Schema(text, "AVRO"))


def offline_checks(schemas: Iterable[LocalSchema], levels: CompatibilityLevels) -> list[SubjectCheck]:
    """Parse-and-style checks only (the schemas were parsed when loaded)."""
    checks = []
    for schema in schemas:
        problems = tuple(lint_problems(schema.parsed))
        checks.append(SubjectCheck(schema.subject, levels.level(schema.subject),
                                   "invalid" if problems else "offline", problems=problems))
    return checks


def check_schema(registry: SchemaRegistry, schema: LocalSchema, level: str) -> SubjectCheck:
    """Is the local schema compatible with every registered version under the repo's level?"""
    lint = tuple(lint_problems(schema.parsed))
    if lint:
        return SubjectCheck(schema.subject, level, "invalid", problems=lint)
    versions = tuple(registry.versions(schema.subject))
    registry_level = registry.level(schema.subject) if versions else None
    base = SubjectCheck(schema.subject, level, "new", registry_level, versions)
    if not versions:
        return base
    same = registry.lookup(schema.subject, schema.text)
    if same is not None:
        return replace(base, status="unchanged", version=same.version)
    # seatflow's rules under the repo's level: they hold even when the registry's level differs.
    registered = [json.loads(registry.version_text(schema.subject, v)) for v in versions]
    problems = compatibility_problems(schema.parsed, registered, level)
    if registry_level == level and not registry.is_compatible(schema.subject, schema.text):
        # The registry's reasons are terse (a removed field shows as "/fields/1: status"), so
        # seatflow's own wording follows them.
        problems = [f"registry: {p}" for p in registry.dry_run_problems(schema.subject, schema.text)
                    ] or ["registry: incompatible (it gave no reason)"]
        problems += [f"seatflow: {p}" for p in compatibility_problems(schema.parsed, registered, level)]
    status: Status = "incompatible" if problems else "compatible"
    return replace(base, status=status, problems=tuple(problems))


def check_schemas(registry: SchemaRegistry, schemas: Iterable[LocalSchema],
                  levels: CompatibilityLevels) -> list[SubjectCheck]:
    return [check_schema(registry, s, levels.level(s.subject)) for s in schemas]


def register_schemas(registry: SchemaRegistry, schemas: list[LocalSchema], *,
                     levels: CompatibilityLevels | None = None) -> list[Registration]:
    """Check every schema, then set levels and register new versions; all or nothing.

    Raises IncompatibleSchemaError (nothing registered) when any schema breaks its level.
    Registering a schema the subject already has creates no version.
    """
    levels = levels or load_compatibility()
    checks = check_schemas(registry, schemas, levels)
    if not all(c.ok for c in checks):
        raise IncompatibleSchemaError(checks)
    for check in checks:
        if check.registry_level != check.level:
            registry.set_level(check.subject, check.level)
            log.info("compatibility of %s set to %s", check.subject, check.level)
    # Now that the registry holds the repo's levels, its own verdict must agree as well.
    rechecked = [check_schema(registry, s, c.level) if c.status == "compatible" else c
                 for s, c in zip(schemas, checks, strict=True)]
    if not all(c.ok for c in rechecked):
        raise IncompatibleSchemaError(rechecked)
    registrations = []
    for schema, check in zip(schemas, rechecked, strict=True):
        if check.status == "unchanged":
            registered = registry.lookup(schema.subject, schema.text)
            status: Literal["registered", "unchanged"] = "unchanged"
        else:
            registry.register(schema.subject, schema.text)
            registered = registry.lookup(schema.subject, schema.text)
            status = "registered"
        if registered is None or registered.version is None or registered.schema_id is None:
            raise SchemaError(f"{schema.subject}: the registry does not find the schema just "
                              "registered")
        registrations.append(Registration(schema.subject, status, registered.version,
                                          registered.schema_id, check.level))
    return registrations


def _pretty(text: str) -> list[str]:
    # Keys sorted: the registry hands schemas back re-serialized, with its own key order.
    return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def diff_schema(registry: SchemaRegistry, schema: LocalSchema) -> SchemaDiff:
    """The local schema against the latest registered version of its subject."""
    versions = registry.versions(schema.subject)
    if not versions:
        return SchemaDiff(schema.subject, None, tuple(_pretty(schema.text)))
    latest = versions[-1]
    lines = difflib.unified_diff(
        _pretty(registry.version_text(schema.subject, latest)), _pretty(schema.text),
        fromfile=f"{schema.subject} version {latest} (registry)",
        tofile=f"schemas/{schema.subject}.avsc", lineterm="")
    return SchemaDiff(schema.subject, latest, tuple(lines))
