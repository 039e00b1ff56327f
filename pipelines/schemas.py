"""The Avro schemas in schemas/: one .avsc per registry subject (topic-name strategy)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from pipelines.settings import PROJECT_ROOT

__all__ = ["SCHEMAS_DIR", "LocalSchema", "load_schema", "local_schemas", "register_schemas"]

SCHEMAS_DIR = PROJECT_ROOT / "schemas"


@dataclass(frozen=True)
class LocalSchema:
    subject: str
    path: Path
    text: str

    @property
    def parsed(self) -> dict:
        return json.loads(self.text)


def load_schema(subject: str, directory: Path = SCHEMAS_DIR) -> LocalSchema:
    """Read and parse schemas/<subject>.avsc; raises ValueError naming the file when invalid."""
    path = directory / f"{subject}.avsc"
    text = path.read_text(encoding="utf-8")
    try:
        fastavro.parse_schema(json.loads(text))
    except (ValueError, fastavro.schema.SchemaParseException) as e:
        raise ValueError(f"{path}: not a valid Avro schema: {e}") from e
    return LocalSchema(subject=subject, path=path, text=text)


def local_schemas(directory: Path = SCHEMAS_DIR) -> list[LocalSchema]:
    return [load_schema(p.stem, directory) for p in sorted(directory.glob("*.avsc"))]


def register_schemas(client: SchemaRegistryClient, schemas: list[LocalSchema]) -> dict[str, int]:
    """Register each schema under its subject; registering the same schema again is a no-op."""
    return {s.subject: client.register_schema(s.subject, Schema(s.text, "AVRO")) for s in schemas}
