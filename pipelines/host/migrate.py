"""Numbered SQL migrations of the ticketing host, applied once each, in order."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import psycopg
from psycopg import sql

from pipelines.host import PUBLICATION, HostError
from pipelines.settings import Settings

__all__ = [
    "AppliedMigration",
    "Migration",
    "apply_migrations",
    "load_migrations",
    "parse_migration",
    "pending_migrations",
    "render_migration",
]

logger = logging.getLogger(__name__)

_FILENAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_RUN_AS = re.compile(r"^--\s*seatflow:\s*run-as\s+(?P<who>superuser|app)\s*$", re.MULTILINE)
# Any number fits: two migrate commands at once serialise on it.
_LOCK_KEY = 0x5EA7F10


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, name, SQL text and who runs it."""

    version: int
    name: str
    text: str
    run_as: Literal["superuser", "app"]

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str


def parse_migration(filename: str, text: str) -> Migration:
    """Read a migration's version, name and role from its file name and header."""
    match = _FILENAME.match(filename)
    if match is None:
        raise HostError(f"migration file {filename!r} is not named NNNN_snake_case.sql")
    run_as = _RUN_AS.search(text)
    who: Literal["superuser", "app"] = (
        "superuser" if run_as is not None and run_as["who"] == "superuser" else "app"
    )
    return Migration(int(match["version"]), match["name"], text, who)


def load_migrations() -> list[Migration]:
    """The migrations shipped in pipelines/host/migrations, in version order."""
    folder = resources.files("pipelines.host") / "migrations"
    migrations = [
        parse_migration(entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise HostError(f"two migrations share a version: {versions}")
    return migrations


def pending_migrations(
    migrations: Sequence[Migration], applied: Iterable[AppliedMigration]
) -> list[Migration]:
    """Migrations not yet applied; refuses if an applied one was edited since."""
    by_version = {a.version: a for a in applied}
    pending = []
    for migration in migrations:
        done = by_version.get(migration.version)
        if done is None:
            pending.append(migration)
        elif done.checksum != migration.checksum:
            raise HostError(
                f"migration {migration.label} was edited after it was applied; "
                "write a new migration instead"
            )
    return pending


def render_migration(migration: Migration, params: Mapping[str, sql.Composable]) -> sql.Composed:
    """The migration's SQL with its {placeholders} filled in (identifiers, literals)."""
    try:
        return sql.SQL(migration.text).format(**params)
    except (KeyError, IndexError, ValueError) as e:
        raise HostError(f"migration {migration.label} has a bad placeholder: {e}") from e


def migration_params(settings: Settings) -> dict[str, sql.Composable]:
    """Values the SQL files may use; secrets come from settings at run time only."""
    return {
        "app_user": sql.Identifier(settings.pg_app_user),
        "database": sql.Identifier(settings.pg_database),
        "debezium_user": sql.Identifier(settings.pg_debezium_user),
        "debezium_user_literal": sql.Literal(settings.pg_debezium_user),
        "debezium_password": sql.Literal(settings.password("pg_debezium_password")),
        "publication": sql.Identifier(PUBLICATION),
    }


_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def apply_migrations(
    settings: Settings, *, superuser_dsn: str, migrations: Sequence[Migration] | None = None
) -> list[Migration]:
    """Apply pending migrations as the superuser, each in its own transaction."""
    migrations = load_migrations() if migrations is None else migrations
    params = migration_params(settings)
    dsn = superuser_dsn  # the local stack's socket, or TCP with a password elsewhere
    applied_now: list[Migration] = []
    try:
        with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            try:
                conn.execute(_CREATE_LEDGER)
                rows = conn.execute(
                    "SELECT version, name, checksum FROM public.schema_migrations"
                ).fetchall()
                done = [AppliedMigration(*row) for row in rows]
                for migration in pending_migrations(migrations, done):
                    _apply_one(conn, migration, params, settings.pg_app_user)
                    applied_now.append(migration)
                    logger.info("applied migration %s", migration.label)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    except psycopg.Error as e:
        raise HostError(f"cannot migrate the ticketing database: {e}") from e
    return applied_now


def _apply_one(
    conn: psycopg.Connection[tuple[Any, ...]],
    migration: Migration,
    params: Mapping[str, sql.Composable],
    app_user: str,
) -> None:
    statement = render_migration(migration, params)
    try:
        with conn.transaction():
            if migration.run_as == "app":
                # Objects created below are owned by the app role, not the superuser.
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(app_user)))
            conn.execute(statement)
            conn.execute("RESET ROLE")
            conn.execute(
                "INSERT INTO public.schema_migrations (version, name, checksum)"
                " VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except psycopg.Error as e:
        raise HostError(f"migration {migration.label} failed and was rolled back: {e}") from e
