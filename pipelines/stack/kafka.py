"""Formatting the KRaft storage of the controller and the broker, once."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from pipelines.stack.errors import StackError
from pipelines.stack.layout import StackLayout

__all__ = ["format_storage", "new_cluster_id"]


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return text


def format_storage(java: Path, layout: StackLayout) -> bool:
    """kafka-storage format: the controller as a quorum of one (--standalone), the broker with
    the same cluster id; unless they are formatted already."""
    controller = layout.controller_data / "meta.properties"
    broker = layout.kafka_data / "meta.properties"
    if controller.exists() and broker.exists():
        return False
    if broker.exists():
        # The broker's log dir holds the metadata log of a combined node: its cluster's topics
        # and registrations cannot move to a new controller.
        raise StackError(
            "this stack's Kafka was made as one broker+controller process; it now runs its "
            "controller apart (stack/conf/server.properties says why). Start afresh with "
            "`seatflow stack reset` (it wipes the stack's data), then `seatflow stack up`.",
            service="controller")
    cluster_id = new_cluster_id()
    _format(java, layout, "controller.properties", layout.controller_data, cluster_id,
            "--standalone")
    _format(java, layout, "server.properties", layout.kafka_data, cluster_id)
    return True


def _format(java: Path, layout: StackLayout, properties: str, data: Path, cluster_id: str,
            *flags: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(java), "-Xmx256m", f"-Dlog4j2.configurationFile={layout.conf / 'log4j2.properties'}",
        "-cp", f"{layout.kafka_libs}/*", "kafka.tools.StorageTool", "format", *flags,
        "--cluster-id", cluster_id, "--config", str(layout.conf / properties),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise StackError(f"formatting Kafka's storage ({properties}) failed: "
                         f"{(done.stderr or done.stdout).strip()[-800:]}", service="kafka")
