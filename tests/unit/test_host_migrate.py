"""Migration files: naming, ordering, checksums and placeholders."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from pipelines.host import CAPTURED_TABLES, PUBLICATION, HostError
from pipelines.host.migrate import (
    AppliedMigration,
    load_migrations,
    migration_params,
    parse_migration,
    pending_migrations,
    render_migration,
)
from pipelines.settings import Settings

pytestmark = pytest.mark.unit


def test_parse_migration_reads_version_name_and_role() -> None:
    app = parse_migration("0007_add_things.sql", "CREATE TABLE t ();")
    assert (app.version, app.name, app.run_as, app.label) == (7, "add_things", "app",
                                                              "0007_add_things")
    su = parse_migration("0002_roles.sql", "-- seatflow: run-as superuser\nCREATE ROLE x;")
    assert su.run_as == "superuser"


@pytest.mark.parametrize("name", ["1_x.sql", "0001-x.sql", "0001_X.sql", "0001_x.txt"])
def test_parse_migration_rejects_bad_names(name: str) -> None:
    with pytest.raises(HostError, match="NNNN_snake_case"):
        parse_migration(name, "")


def test_shipped_migrations_are_ordered_and_render() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    settings = Settings(pg_debezium_password=SecretStr("s3cret'pw"))
    params = migration_params(settings)
    text = "\n".join(render_migration(m, params).as_string(None) for m in migrations)
    assert "'s3cret''pw'" in text  # quoted as a literal, never pasted raw
    assert PUBLICATION in text
    for table in CAPTURED_TABLES:
        assert f"ticketing.{table}" in text


def test_secrets_never_live_in_sql_files() -> None:
    # A password is always a parameter ({debezium_password}), never a literal in the file.
    for migration in load_migrations():
        assert not re.search(r"PASSWORD\s+'", migration.text, re.IGNORECASE), migration.label


def test_only_the_role_migration_needs_the_superuser() -> None:
    assert [m.label for m in load_migrations() if m.run_as == "superuser"] == [
        "0002_debezium_role"
    ]


def test_pending_skips_applied_and_refuses_edited() -> None:
    one = parse_migration("0001_a.sql", "SELECT 1;")
    two = parse_migration("0002_b.sql", "SELECT 2;")
    applied = [AppliedMigration(1, "a", one.checksum)]
    assert pending_migrations([one, two], applied) == [two]
    assert pending_migrations([one, two], [*applied, AppliedMigration(2, "b", two.checksum)]) == []
    with pytest.raises(HostError, match="edited"):
        pending_migrations([one, two], [AppliedMigration(1, "a", "other")])


def test_render_reports_unknown_placeholders() -> None:
    bad = parse_migration("0009_bad.sql", "SELECT {nope};")
    with pytest.raises(HostError, match="placeholder"):
        render_migration(bad, {})
