"""Folders whose programs the stack runs as root must be root's alone.

`stack up` as root runs PostgreSQL's binaries (`SEATFLOW_PG_BIN_DIR`), the JVMs found for the
services and the jars in the artifact cache. If another user could write any of those folders,
or a folder above one (and so rename it away and put their own in its place), that user's
program would run as root. A settings value pointing there is refused before anything starts.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from pipelines.stack.errors import StackError

__all__ = ["require_trusted", "untrusted_reason"]

# Group and others may not write; the sticky bit (as on /tmp) does not make a folder safe for
# a program: anyone may still create a file or folder of their own in it.
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def untrusted_reason(path: Path, *, owner_uid: int = 0) -> str | None:
    """Why running a program from `path` as `owner_uid` would be unsafe, or None (pure but for
    stat): the folder and every folder above it must be owned by owner_uid (or root) and
    writable by no one else."""
    path = Path(os.path.abspath(path))
    for folder in (path, *path.parents):
        try:
            st = folder.stat()
        except FileNotFoundError:
            continue  # checked again once it exists; what is above it still counts
        if st.st_uid not in (0, owner_uid):
            return f"{folder} is owned by uid {st.st_uid}, not by root"
        if st.st_mode & _WRITABLE_BY_OTHERS:
            return f"{folder} is writable by its group or by others (mode {stat.filemode(st.st_mode)})"
    return None


def require_trusted(paths: Iterable[tuple[str, Path]]) -> None:
    """StackError naming the first (setting, folder) that another user could change. Only as
    root: a user's own stack runs programs with the rights that user already has."""
    if os.geteuid() != 0:
        return
    for what, path in paths:
        reason = untrusted_reason(path)
        if reason is not None:
            raise StackError(f"refusing to run programs from {path} ({what}) as root: {reason}")
