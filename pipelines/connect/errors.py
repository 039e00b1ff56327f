"""The errors of pipelines.connect."""

from __future__ import annotations

from pipelines.errors import SeatflowError

__all__ = ["ConnectAuthError", "ConnectError", "ConnectUnreachableError", "ConnectorFileError",
           "ConnectorRefusedError"]


class ConnectError(SeatflowError, RuntimeError):
    """Kafka Connect refused a request or cannot be reached."""


class ConnectUnreachableError(ConnectError):
    """Kafka Connect did not answer (refused, timed out)."""

    # Apart from a refusal (1), so that a deploy script can wait and try again.
    exit_code = 3


class ConnectorFileError(ConnectError):
    """A connector file cannot be read: not JSON, wrong shape, overlay without a base."""


class ConnectorRefusedError(ConnectError):
    """A connector file breaks a project rule (pipelines/connect/lint.py): nothing was sent."""


class ConnectAuthError(ConnectError):
    """Kafka Connect's REST API refused our credentials (401) or our user (403)."""
