"""Kafka Connect: the REST client, connector files as code, and what is done with them."""

from __future__ import annotations

from pipelines.connect.client import ConnectClient
from pipelines.connect.errors import ConnectError, ConnectorFileError, ConnectUnreachableError
from pipelines.connect.files import (
    CONNECTORS_DIR,
    DEFAULT_ENV,
    ConnectorFile,
    load_connector_file,
    load_connectors,
)
from pipelines.connect.ops import apply_connector, deploy_connectors

__all__ = [
    "CONNECTORS_DIR",
    "DEFAULT_ENV",
    "ConnectClient",
    "ConnectError",
    "ConnectUnreachableError",
    "ConnectorFile",
    "ConnectorFileError",
    "apply_connector",
    "deploy_connectors",
    "load_connector_file",
    "load_connectors",
]
