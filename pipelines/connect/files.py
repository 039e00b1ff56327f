"""Connector files: connectors/<name>.json, merged with connectors/overlays/<env>/<name>.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.connect.errors import ConnectorFileError
from pipelines.settings import PROJECT_ROOT

__all__ = [
    "CONNECTORS_DIR",
    "DEFAULT_ENV",
    "ConnectorFile",
    "load_connector_file",
    "load_connectors",
    "merge_overlay",
    "overlay_path",
]

CONNECTORS_DIR = PROJECT_ROOT / "connectors"
DEFAULT_ENV = "local"


@dataclass(frozen=True)
class ConnectorFile:
    """One connector as its files describe it: the base file, with its overlay merged in."""

    path: Path
    name: str
    config: dict[str, str]
    overlay: Path | None = None
    # Keys the overlay set or removed, so lint can name the file a value came from.
    overlaid: frozenset[str] = field(default_factory=frozenset)

    def source_of(self, key: str) -> Path:
        return self.overlay if self.overlay is not None and key in self.overlaid else self.path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConnectorFileError(f"{path}: not valid JSON: {e}") from e
    except OSError as e:
        raise ConnectorFileError(f"{path}: cannot be read: {e.strerror}") from e


def _string_config(path: Path, config: Any, *, allow_null: bool) -> dict[str, Any]:
    if not isinstance(config, dict) or not config:
        raise ConnectorFileError(f"{path}: 'config' must be a non-empty object")
    bad = [k for k, v in config.items() if not (isinstance(v, str) or (allow_null and v is None))]
    if bad:
        kind = "strings (or null to remove a key)" if allow_null else "strings"
        raise ConnectorFileError(f"{path}: config values must be {kind}: {', '.join(bad)}")
    return config


def merge_overlay(base: dict[str, str], overlay: dict[str, str | None]) -> dict[str, str]:
    """The base config with the overlay's keys set; a null in the overlay removes the key."""
    merged = dict(base)
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def overlay_path(path: Path, env: str) -> Path:
    """connectors/overlays/<env>/<file name> for connectors/<file name>."""
    return path.parent / "overlays" / env / path.name


def load_connector_file(path: Path, *, env: str | None = None) -> ConnectorFile:
    """Read {"name": ..., "config": {...}} and, for `env`, merge its overlay {"config": {...}}."""
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not doc["name"]:
        raise ConnectorFileError(f"{path}: expected an object with a string 'name'")
    config = _string_config(path, doc.get("config"), allow_null=False)
    if env is None:
        return ConnectorFile(path=path, name=doc["name"], config=config)
    extra = overlay_path(path, env)
    if not extra.exists():
        return ConnectorFile(path=path, name=doc["name"], config=config)
    over = _read_json(extra)
    if not isinstance(over, dict) or set(over) - {"config"}:
        raise ConnectorFileError(f"{extra}: an overlay holds only a 'config' object")
    changes = _string_config(extra, over.get("config"), allow_null=True)
    return ConnectorFile(path=path, name=doc["name"], config=merge_overlay(config, changes),
                         overlay=extra, overlaid=frozenset(changes))


def load_connectors(directory: Path = CONNECTORS_DIR, *, env: str = DEFAULT_ENV) -> list[ConnectorFile]:
    """Every connectors/*.json with its overlay for `env`; an overlay without a base is an error."""
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ConnectorFileError(f"no connector files in {directory}")
    stray = sorted({p.name for p in (directory / "overlays" / env).glob("*.json")}
                   - {p.name for p in files})
    if stray:
        raise ConnectorFileError(
            f"{directory / 'overlays' / env}: overlays without a base file: {', '.join(stray)}")
    return [load_connector_file(p, env=env) for p in files]
