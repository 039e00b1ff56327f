"""Bring the pipeline up on a running stack: schema, data, schemas, topics, connector."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from pipelines.connect import CONNECTORS_DIR, ConnectClient, apply_connector, load_connector_file
from pipelines.host.migrate import apply_migrations
from pipelines.host.seed import seed_host
from pipelines.schemas import local_schemas, register_schemas
from pipelines.settings import Settings
from pipelines.topics import ensure_topics, output_topics

__all__ = ["deploy_pipeline"]


def deploy_pipeline(
    settings: Settings, *, events: int = 3, say: Callable[[str], None] = lambda _: None
) -> None:
    """Idempotent: migrate, seed, register schemas, create topics, apply the connectors."""
    applied = apply_migrations(settings)
    say(f"migrations applied: {len(applied)}")
    seeded = seed_host(settings, events=events)
    say(f"seeded: {seeded.seats:,} seats, {seeded.inventory_rows_added:,} new inventory rows")
    registry = SchemaRegistryClient({"url": settings.ccompat_url, "timeout": 10})
    ids = register_schemas(registry, local_schemas())
    say(f"schemas registered: {', '.join(ids)}")
    created = ensure_topics(AdminClient({"bootstrap.servers": settings.kafka_bootstrap}),
                            output_topics())
    say(f"topics created: {', '.join(created) or 'none (all exist)'}")
    client = ConnectClient(settings.connect_url)
    for path in sorted(CONNECTORS_DIR.glob("*.json")):
        connector = load_connector_file(path)
        outcome = apply_connector(client, connector)
        client.wait_running(connector.name)
        say(f"connector {connector.name}: {outcome}, running")
