"""What each of the local stack's Kafka principals may do: the ACLs that admin creates.

The broker authorizes every request (StandardAuthorizer, allow.everyone.if.no.acl.found=false,
stack/conf/server.properties); admin is a super user, every other principal may do only what
an ACL here allows:

- connect: Kafka Connect and the Debezium connector. Its internal topics (`_connect-*`, the
  connector's own offsets topic among them), its group, the CDC topics (`<prefix>.*`, which it
  creates as tables first change) and Debezium's heartbeat topic; the transactional ids of
  exactly-once source delivery (`<group>-<connector>-<task>` and the leader's
  `connect-cluster-<group>`).
- processor: reads the CDC topics and reads back what it published (its warm standbys follow the
  published state); writes the availability, anomaly and dead-letter topics; its consumer group
  and its transactional ids (`<group>-<slot>`); the groups of its topic readers.
- reader: reads the availability topics (`seatflow serve` reads them by assignment; its
  consumer's group, never joined, must still be one it may describe).

`ensure_acls` is idempotent (creating an ACL that exists changes nothing): `seatflow stack up`
runs it before Connect starts, and `seatflow deploy` again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from pipelines.kafka import clients
from pipelines.kafka.reading import reader_group_prefix
from pipelines.kafka.topics import (
    ANOMALIES,
    DEAD_LETTER,
    EVENT_AVAILABILITY,
    SEAT_AVAILABILITY,
    SECTION_AVAILABILITY,
)
from pipelines.processor.config import GROUP_ID
from pipelines.processor.published import REBUILD_READER
from pipelines.processor.reference_feed import REFERENCE_READER
from pipelines.serve.follower import SERVE_READER
from pipelines.settings import Settings

__all__ = ["CONNECT_GROUP", "Grant", "acl_bindings", "ensure_acls", "stack_grants"]

# stack/conf/connect-distributed.properties group.id.
CONNECT_GROUP = "seatflow-connect"
# Debezium's default topic.heartbeat.prefix: its heartbeats go to <this>.<topic.prefix>.
DEBEZIUM_HEARTBEAT_PREFIX = "__debezium-heartbeat."
AVAILABILITY_TOPICS = (SEAT_AVAILABILITY, SECTION_AVAILABILITY, EVENT_AVAILABILITY)
PROCESSOR_READERS = (REBUILD_READER, REFERENCE_READER)
CLUSTER = "kafka-cluster"  # the name of the one CLUSTER resource

Op = AclOperation
READ = (Op.READ, Op.DESCRIBE)
WRITE = (Op.WRITE, Op.DESCRIBE)


@dataclass(frozen=True, slots=True)
class Grant:
    """Some operations of one principal on the resources a name (or a name prefix) matches."""

    principal: str
    resource: ResourceType
    name: str
    operations: tuple[AclOperation, ...]
    prefixed: bool = False


def stack_grants(settings: Settings) -> list[Grant]:
    """Every ACL of the local stack, by principal."""
    cdc = f"{settings.topic_prefix}."
    topic, group, txn = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
    return [
        Grant("connect", topic, "_connect-", (Op.ALL,), prefixed=True),
        Grant("connect", topic, cdc, (Op.WRITE, Op.CREATE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS),
              prefixed=True),
        Grant("connect", topic, f"{DEBEZIUM_HEARTBEAT_PREFIX}{settings.topic_prefix}",
              (Op.WRITE, Op.CREATE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS), prefixed=True),
        Grant("connect", group, CONNECT_GROUP, READ),
        Grant("connect", txn, f"{CONNECT_GROUP}-", WRITE, prefixed=True),
        Grant("connect", txn, f"connect-cluster-{CONNECT_GROUP}", WRITE),
        Grant("connect", ResourceType.BROKER, CLUSTER, (Op.IDEMPOTENT_WRITE, Op.DESCRIBE)),
        Grant("processor", topic, cdc, READ, prefixed=True),
        *(Grant("processor", topic, name, (Op.WRITE, Op.READ, Op.DESCRIBE))
          for name in (*AVAILABILITY_TOPICS, ANOMALIES, DEAD_LETTER)),
        Grant("processor", group, GROUP_ID, READ),
        # Its readers of the published state and the reference topics (topic_reader's groups).
        *(Grant("processor", group, reader_group_prefix(p), READ, prefixed=True)
          for p in PROCESSOR_READERS),
        Grant("processor", txn, f"{GROUP_ID}-", WRITE, prefixed=True),
        Grant("processor", ResourceType.BROKER, CLUSTER, (Op.IDEMPOTENT_WRITE,)),
        *(Grant("reader", topic, name, READ) for name in AVAILABILITY_TOPICS),
        Grant("reader", group, reader_group_prefix(SERVE_READER), READ, prefixed=True),
    ]


def acl_bindings(grants: Iterable[Grant], host: str = "*") -> list[AclBinding]:
    """One ALLOW binding per operation of each grant."""
    return [AclBinding(g.resource, g.name,
                       ResourcePatternType.PREFIXED if g.prefixed else ResourcePatternType.LITERAL,
                       f"User:{g.principal}", host, op, AclPermissionType.ALLOW)
            for g in grants for op in g.operations]


def ensure_acls(admin: AdminClient, settings: Settings, *, timeout: float = 30.0) -> int:
    """Create the stack's ACLs (those that exist are left as they are); how many there are. The
    admin client must log in as a super user (admin)."""
    bindings = acl_bindings(stack_grants(settings))
    for future in admin.create_acls(bindings, request_timeout=timeout).values():
        future.result(timeout)
    return len(bindings)


def main() -> None:
    """`python -m pipelines.kafka.acls`: create the ACLs as Settings' Kafka login, which must be
    admin (docker-compose.yml's kafka-acls service runs it before Connect starts)."""
    settings = Settings()
    if settings.kafka_username != "admin":
        raise SystemExit("the ACLs are created as admin: set SEATFLOW_KAFKA_ADMIN_PASSWORD "
                         "(and no SEATFLOW_KAFKA_USERNAME)")
    print(f"{ensure_acls(clients.admin(settings), settings)} ACLs in place")


if __name__ == "__main__":
    main()
