"""Kafka Connect: the REST client, connector files as code, and what is done with them."""

from __future__ import annotations

from pipelines.connect.client import ConnectClient, connect_session
from pipelines.connect.errors import (
    ConnectAuthError,
    ConnectError,
    ConnectorFileError,
    ConnectorRefusedError,
    ConnectUnreachableError,
)
from pipelines.connect.files import (
    CONNECTORS_DIR,
    DEFAULT_ENV,
    ConnectorFile,
    load_connector_file,
    load_connectors,
)
from pipelines.connect.lint import TicketingHost
from pipelines.connect.ops import apply_connector, deploy_connectors

__all__ = [
    "CONNECTORS_DIR",
    "DEFAULT_ENV",
    "ConnectAuthError",
    "ConnectClient",
    "ConnectError",
    "ConnectUnreachableError",
    "ConnectorFile",
    "ConnectorFileError",
    "ConnectorRefusedError",
    "TicketingHost",
    "apply_connector",
    "connect_session",
    "deploy_connectors",
    "load_connector_file",
    "load_connectors",
]
