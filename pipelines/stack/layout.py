"""Where the local stack keeps things, and on which ports it listens."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.settings import PROJECT_ROOT, Settings

__all__ = ["STACK_DIR", "StackLayout", "registry_management_port", "running_as_root"]

# The Maven POMs and config templates, in the work tree.
STACK_DIR = PROJECT_ROOT / "stack"


@dataclass(frozen=True, slots=True)
class StackLayout:
    """Paths under Settings.home (wiped by reset) and Settings.cache_dir (kept)."""

    home: Path
    cache: Path

    @classmethod
    def of(cls, settings: Settings) -> StackLayout:
        return cls(home=settings.home.expanduser().resolve(),
                   cache=settings.cache_dir.expanduser().resolve())

    # -- cache (survives reset) --
    @property
    def m2(self) -> Path:
        return self.cache / "m2"

    @property
    def artifacts(self) -> Path:
        return self.cache / "artifacts"

    @property
    def kafka_libs(self) -> Path:
        return self.artifacts / "kafka" / "libs"

    @property
    def registry_dir(self) -> Path:
        return self.artifacts / "apicurio-registry"

    @property
    def connect_plugins(self) -> Path:
        return self.artifacts / "connect-plugins"

    # -- home (wiped by reset) --
    @property
    def conf(self) -> Path:
        return self.home / "conf"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def connector_secrets(self) -> Path:
        """Files a connector config may read through Connect's file provider (a login of its
        own, as `${file:PATH:KEY}`): apart from the rest of `secrets`, which it may not."""
        return self.secrets / "connectors"

    @property
    def kafka_secrets(self) -> Path:
        """admin's Kafka password, for the broker and the controller: apart from `secrets`, whose
        files Connect's connector configs may read."""
        return self.home / "kafka" / "secrets"

    @property
    def pg_root(self) -> Path:
        """Owned by the OS user PostgreSQL runs as: its data folder and socket live here."""
        return self.home / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.pg_root / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.pg_root / "run"

    @property
    def kafka_data(self) -> Path:
        return self.home / "kafka" / "data"

    @property
    def controller_data(self) -> Path:
        """The KRaft controller's metadata log (a process of its own beside the broker)."""
        return self.home / "kafka" / "controller"

    @property
    def registry_work(self) -> Path:
        return self.home / "registry"

    @property
    def registry_secrets(self) -> Path:
        """The registry's users file (pipelines/stack/registry.py): apart from `secrets`, whose
        files Connect's connector configs may read."""
        return self.registry_work / "secrets"

    @property
    def supervisord_conf(self) -> Path:
        return self.conf / "supervisord.conf"

    @property
    def supervisord_socket(self) -> Path:
        return self.run / "supervisord.sock"

    @property
    def supervisord_pidfile(self) -> Path:
        return self.run / "supervisord.pid"

    def log_of(self, service: str) -> Path:
        return self.logs / f"{service}.log"


def running_as_root() -> bool:
    return os.geteuid() == 0


def registry_management_port(settings: Settings) -> int:
    """Quarkus serves /health on a management port of its own: the registry's port + 1."""
    return settings.registry_port + 1
