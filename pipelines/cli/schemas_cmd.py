"""`seatflow schemas ...`: the Avro schemas in schemas/ and the registry."""

from __future__ import annotations

import typer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipelines.cli.output import console, fail
from pipelines.schemas import local_schemas, register_schemas
from pipelines.settings import get_settings

app = typer.Typer(no_args_is_help=True)


@app.command()
def check() -> None:
    """Parse every schema in schemas/."""
    try:
        schemas = local_schemas()
    except ValueError as e:
        fail(str(e))
    for schema in schemas:
        console.print(f"{schema.subject}: ok")


@app.command()
def register() -> None:
    """Register every schema under its subject; the same schema twice adds no version."""
    settings = get_settings()
    client = SchemaRegistryClient({"url": settings.ccompat_url, "timeout": 10})
    try:
        ids = register_schemas(client, local_schemas())
    except (ValueError, SchemaRegistryError) as e:
        fail(str(e))
    for subject, schema_id in ids.items():
        console.print(f"{subject}: id {schema_id}")
