"""Formatting the KRaft storage of the single Kafka node, once."""

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
    """kafka-storage format --standalone, unless the log dir is formatted already."""
    if (layout.kafka_data / "meta.properties").exists():
        return False
    layout.kafka_data.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(java), "-Xmx256m", f"-Dlog4j2.configurationFile={layout.conf / 'log4j2.properties'}",
        "-cp", f"{layout.kafka_libs}/*", "kafka.tools.StorageTool", "format",
        "--standalone", "--cluster-id", new_cluster_id(),
        "--config", str(layout.conf / "server.properties"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise StackError(f"formatting Kafka's storage failed: "
                         f"{(done.stderr or done.stdout).strip()[-800:]}", service="kafka")
    return True
