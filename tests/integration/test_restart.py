"""After `stack down` and `stack up`, Debezium resumes streaming without a new snapshot."""

from __future__ import annotations

import psycopg
import pytest
import requests

from pipelines import stack
from pipelines.avro import AvroDecoder, registry_client
from pipelines.connect import ConnectClient
from pipelines.kafka.topics import SEAT_AVAILABILITY, cdc_topic
from pipelines.settings import Settings
from pipelines.stack.layout import StackLayout
from pipelines.stack.supervisor import Supervisor
from tests.integration.conftest import end_offsets, records_since, wait_for

pytestmark = pytest.mark.integration


def touch_seat(settings: Settings) -> tuple[int, int, int]:
    """Change one seat's price (a streamed update); its (event_id, seat_id, new version)."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        row = conn.execute(
            "UPDATE ticketing.seat_inventory SET price = price + 1"
            " WHERE (event_id, seat_id) = (SELECT event_id, seat_id FROM ticketing.seat_inventory"
            "   ORDER BY event_id, seat_id LIMIT 1)"
            " RETURNING event_id, seat_id, version"
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def changes_since(settings: Settings, topic: str, start: dict[int, int]) -> list[dict]:
    """Every CDC envelope of topic after the given offsets, decoded through the registry."""
    decoder = AvroDecoder(registry_client(settings))
    return [decoder.decode(msg.value()) for msg in records_since(settings, topic, start)
            if msg.value() is not None]


def wait_for_change(settings: Settings, topic: str, start: dict[int, int],
                    seat: tuple[int, int, int]) -> list[dict]:
    def arrived() -> list[dict] | None:
        changes = changes_since(settings, topic, start)
        found = any((c["after"] or {}).get("seat_id") == seat[1]
                    and c["after"]["version"] == seat[2] for c in changes)
        return changes if found else None

    return wait_for(arrived, timeout=60, what=f"the change of seat {seat} in {topic}")


def test_restart_resumes_streaming_without_snapshot_and_keeps_schemas(pipeline: Settings) -> None:
    settings = pipeline
    topic = cdc_topic(settings, "seat_inventory")
    # The connector is streaming and has committed an offset past the snapshot.
    wait_for_change(settings, topic, end_offsets(settings, topic), touch_seat(settings))
    before = end_offsets(settings, topic)

    # A `down` cut short (Ctrl-C) leaves supervisord stopping its programs: the next `down`
    # waits for it to finish instead of reporting a stack that is not running.
    supervisor = Supervisor(StackLayout.of(settings))
    supervisor._proxy().supervisor.shutdown()
    assert not supervisor.is_running() and supervisor.daemon_pid() is not None
    assert stack.down(settings), "down took a stopping stack for one that is not running"
    assert supervisor.daemon_pid() is None
    assert all(s.state == "STOPPED" for s in stack.status(settings))
    stack.up(settings)
    ConnectClient.from_settings(settings).wait_running(settings.connector_name, timeout_s=120)

    seat = touch_seat(settings)
    changes = wait_for_change(settings, topic, before, seat)
    assert len(changes) < 100, f"{len(changes)} records after the restart: a new snapshot ran"
    assert all(c["op"] != "r" and c["source"]["snapshot"] in ("false", None) for c in changes)

    subjects = requests.get(f"{settings.ccompat_url}/subjects", auth=settings.registry_auth(),
                            timeout=10).json()
    assert {f"{SEAT_AVAILABILITY}-key", f"{SEAT_AVAILABILITY}-value", f"{topic}-value"} <= set(subjects)
