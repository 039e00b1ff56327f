"""Settings come only from where their reader meant, and root runs programs only from root's
folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.settings import PROJECT_ROOT
from pipelines.stack.trust import untrusted_reason

pytestmark = pytest.mark.unit


def _pg_bin_dir_seen(cwd: Path, env: dict[str, str]) -> str:
    code = "from pipelines.settings import Settings; print(Settings().pg_bin_dir)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEATFLOW_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**clean, **env,
                          "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def test_a_dotenv_in_the_current_folder_is_not_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SEATFLOW_PG_BIN_DIR=/tmp/evil\n")
    assert _pg_bin_dir_seen(tmp_path, {}) != "/tmp/evil"


def test_an_explicit_settings_file_is_read(tmp_path: Path) -> None:
    chosen = tmp_path / "prod.env"
    chosen.write_text("SEATFLOW_PG_BIN_DIR=/opt/pg/bin\n")
    assert _pg_bin_dir_seen(Path("/"), {"SEATFLOW_ENV_FILE": str(chosen)}) == "/opt/pg/bin"


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    chosen = tmp_path / "prod.env"
    chosen.write_text("SEATFLOW_PG_BIN_DIR=/opt/pg/bin\n")
    seen = _pg_bin_dir_seen(Path("/"), {"SEATFLOW_ENV_FILE": str(chosen),
                                        "SEATFLOW_PG_BIN_DIR": "/usr/local/pg/bin"})
    assert seen == "/usr/local/pg/bin"


def test_root_owned_folders_that_only_root_writes_are_trusted(tmp_path: Path) -> None:
    assert untrusted_reason(Path("/usr/bin")) is None
    # A folder not there yet: what is above it is what counts.
    assert untrusted_reason(Path("/usr/lib/not-there/bin")) is None


def test_a_folder_others_can_write_is_named(tmp_path: Path) -> None:
    mine = tmp_path / "bin"
    mine.mkdir()
    owner = mine.stat().st_uid
    os.chmod(tmp_path, 0o755)
    os.chmod(mine, 0o777)
    reason = untrusted_reason(mine, owner_uid=owner)
    assert reason is not None and str(mine) in reason and "writable" in reason
    os.chmod(mine, 0o755)
    # /tmp above it is writable by all (sticky or not): replaceable, so refused too.
    reason = untrusted_reason(mine, owner_uid=owner)
    assert reason is not None and "writable" in reason


def test_a_folder_of_another_user_is_named(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a folder away")
    theirs = Path("/var/tmp") / f"seatflow-trust-{os.getpid()}"
    theirs.mkdir(mode=0o755)
    try:
        os.chown(theirs, 65534, 65534)
        reason = untrusted_reason(theirs)
        assert reason is not None and "uid 65534" in reason
    finally:
        theirs.rmdir()


def test_stack_up_as_root_refuses_a_pg_bin_dir_others_can_write(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the check applies to root only")
    from pipelines import stack
    from pipelines.settings import Settings
    from pipelines.stack import StackError

    evil = tmp_path / "bin"
    evil.mkdir(mode=0o777)
    os.chmod(evil, 0o777)
    settings = Settings(home=tmp_path / "home", pg_bin_dir=evil)
    with pytest.raises(StackError, match=r"SEATFLOW_PG_BIN_DIR.*writable"):
        stack.up(settings)
    assert not (tmp_path / "home").exists()  # refused before anything was written or started
