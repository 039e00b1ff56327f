"""The ticketing host's PostgreSQL: install check, initdb, config files and role bootstrap."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from pipelines.settings import Settings
from pipelines.stack.configs import PG_OS_USER
from pipelines.stack.errors import StackError
from pipelines.stack.layout import StackLayout, running_as_root

__all__ = ["bootstrap", "ensure_installed", "prepare_cluster", "superuser_dsn"]

log = logging.getLogger(__name__)
INCLUDE_LINE = "include_if_exists = 'seatflow.conf'"


def ensure_installed(settings: Settings) -> None:
    """Debian's postgresql-15 binaries; installed with apt-get when root on Debian."""
    if (settings.pg_bin_dir / "postgres").exists():
        return
    if running_as_root() and Path("/etc/debian_version").exists() and shutil.which("apt-get"):
        log.info("installing postgresql-15 with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql-15"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise StackError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
        if (settings.pg_bin_dir / "postgres").exists():
            return
    raise StackError(
        f"PostgreSQL 15 is needed in {settings.pg_bin_dir}: apt-get install postgresql-15 "
        "(or set SEATFLOW_PG_BIN_DIR)"
    )


def _as_pg_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", PG_OS_USER, "--", *cmd] if running_as_root() else cmd


def _chown_to_pg(path: Path) -> None:
    if not running_as_root():
        return
    try:
        owner = pwd.getpwnam(PG_OS_USER)
    except KeyError as e:
        raise StackError(f"OS user {PG_OS_USER!r} is missing: apt-get install postgresql-15") from e
    for root, dirs, files in os.walk(path):
        os.chown(root, owner.pw_uid, owner.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False)


def prepare_cluster(settings: Settings, layout: StackLayout) -> bool:
    """initdb once, then (every time) install our postgresql.conf part and pg_hba.conf."""
    created = False
    layout.home.mkdir(parents=True, exist_ok=True)
    # The postgres user must traverse <home> (but not list it) to reach its own folder.
    os.chmod(layout.home, 0o711)  # noqa: S103
    layout.pg_socket_dir.mkdir(parents=True, exist_ok=True)
    if not (layout.pg_data / "PG_VERSION").exists():
        layout.pg_data.mkdir(parents=True, exist_ok=True)
        os.chmod(layout.pg_data, 0o700)
        _chown_to_pg(layout.pg_root)
        # No superuser password: the superuser logs in by the stack's socket only (peer, see
        # stack/conf/pg_hba.conf), so there is none to guess, leak or rotate.
        cmd = _as_pg_user([
            str(settings.pg_bin_dir / "initdb"), "-D", str(layout.pg_data),
            "-U", settings.pg_superuser, "-E", "UTF8", "--no-locale",
            "--auth-local=peer", "--auth-host=reject",
        ])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise StackError(f"initdb failed: {(done.stderr or done.stdout).strip()[-800:]}",
                             service="postgres")
        created = True
    conf = layout.pg_data / "postgresql.conf"
    text = conf.read_text()
    if INCLUDE_LINE not in text:
        conf.write_text(text.rstrip("\n") + f"\n\n# seatflow\n{INCLUDE_LINE}\n")
    shutil.copyfile(layout.conf / "postgresql.conf", layout.pg_data / "seatflow.conf")
    shutil.copyfile(layout.conf / "pg_hba.conf", layout.pg_data / "pg_hba.conf")
    shutil.copyfile(layout.conf / "pg_ident.conf", layout.pg_data / "pg_ident.conf")
    _chown_to_pg(layout.pg_root)
    return created


def superuser_dsn(settings: Settings, database: str = "postgres") -> str:
    """The superuser's connection: by the local stack's socket (peer authentication, no
    password), or over TCP with SEATFLOW_PG_SUPERUSER_PASSWORD for a PostgreSQL elsewhere."""
    if settings.pg_superuser_password is not None:
        return settings.pg_dsn(user=settings.pg_superuser,
                               password=settings.pg_superuser_password, database=database)
    socket_dir = StackLayout.of(settings).pg_socket_dir
    return (f"host={socket_dir} port={settings.pg_port} dbname={database} "
            f"user={settings.pg_superuser}")


def bootstrap(settings: Settings) -> None:
    """Idempotently: the app and registry roles (LOGIN, password) owning their databases, and
    the Debezium role's password (the role itself comes with the migrations). Every `up` sets
    the passwords: a value changed in the settings takes effect at the next `up`."""
    wanted = [
        (settings.pg_app_user, settings.password("pg_app_password"), settings.pg_database),
        (settings.pg_registry_user, settings.password("pg_registry_password"),
         settings.pg_registry_database),
    ]
    try:
        with psycopg.connect(superuser_dsn(settings), autocommit=True, connect_timeout=5) as conn:
            for role, password, database in wanted:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                      (role,)).fetchone()
                verb = "ALTER" if exists else "CREATE"
                # Passwords can't be bind parameters in DDL; sql.Literal quotes them.
                conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(role), sql.Literal(password)))
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (database,)).fetchone() is None:
                    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(role)))
                else:
                    conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(database), sql.Identifier(role)))
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                            (settings.pg_debezium_user,)).fetchone():
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(settings.pg_debezium_user),
                    sql.Literal(settings.password("pg_debezium_password"))))
    except psycopg.Error as e:
        raise StackError(f"bootstrapping roles and databases failed: {e}",
                         service="postgres") from e
