"""The errors of pipelines.connect."""

from __future__ import annotations

__all__ = ["ConnectError", "ConnectUnreachableError", "ConnectorFileError"]


class ConnectError(RuntimeError):
    """Kafka Connect refused a request or cannot be reached."""


class ConnectUnreachableError(ConnectError):
    """Kafka Connect did not answer (refused, timed out)."""


class ConnectorFileError(ConnectError):
    """A connector file cannot be read: not JSON, wrong shape, overlay without a base."""
