"""Every Kafka client seatflow makes, built from Settings.

Where the brokers are and how a client logs in to them (security protocol, SASL user, TLS
trust) are decided here and nowhere else; a caller adds only what its own use of the client
needs (a group, isolation, transactions, callbacks).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from pipelines.settings import Settings

__all__ = ["ClientConfig", "admin", "client_config", "consumer", "producer"]

# librdkafka's properties that carry a secret.
_SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password", "ssl.keystore.password"})
# Said by Settings alone: a client that set its own would connect otherwise than the rest.
_CONNECTION_KEYS = frozenset({"bootstrap.servers", "security.protocol"})
_CONNECTION_PREFIXES = ("sasl.", "ssl.")
_MASK = "**********"


class ClientConfig(dict[str, Any]):
    """A client's librdkafka configuration. Its repr (and str) masks the secrets, as SecretStr
    does: a config that reaches a log line or a traceback must not carry the password."""

    def __repr__(self) -> str:
        return repr({k: _MASK if k in _SECRET_KEYS else v for k, v in self.items()})

    __str__ = __repr__


def client_config(settings: Settings, **overrides: Any) -> ClientConfig:
    """The brokers and the security settings of `settings` (only those set), then `overrides`
    (librdkafka names, so given as **{"isolation.level": ...}). Overrides may not touch the
    connection itself: ValueError."""
    fixed = sorted(k for k in overrides
                   if k in _CONNECTION_KEYS or k.startswith(_CONNECTION_PREFIXES))
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: only Settings (SEATFLOW_KAFKA_*) say how clients "
                         "connect")
    config = ClientConfig({"bootstrap.servers": settings.kafka_bootstrap})
    # PLAINTEXT is librdkafka's default: left out, an unsecured client's config is as before.
    if settings.kafka_security_protocol != "PLAINTEXT":
        config["security.protocol"] = settings.kafka_security_protocol
    if settings.kafka_sasl_mechanism is not None:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_username is not None:
        config["sasl.username"] = settings.kafka_username
        # SettingsError, naming the variable, when the user has no password.
        config["sasl.password"] = settings.password("kafka_password")
    if settings.kafka_ssl_ca_location is not None:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    config.update(overrides)
    return config


def consumer(settings: Settings, *, group_id: str | None = None, **overrides: Any) -> Consumer:
    """A consumer; in the group `group_id` when given (it joins only if it subscribes)."""
    group = {} if group_id is None else {"group.id": group_id}
    return Consumer(client_config(settings, **group, **overrides))


def producer(settings: Settings, **overrides: Any) -> Producer:
    return Producer(client_config(settings, **overrides))


def admin(settings: Settings, **overrides: Any) -> AdminClient:
    return AdminClient(client_config(settings, **overrides))
