"""The local stack without Docker: PostgreSQL, Kafka (KRaft), Apicurio Registry and Kafka
Connect with Debezium, as local processes under a supervisord of their own."""

from __future__ import annotations

from pipelines.stack.errors import StackError
from pipelines.stack.layout import StackLayout
from pipelines.stack.stack import (
    SERVICES,
    Reporter,
    ServiceStatus,
    apps_status,
    down,
    log_tail,
    reset,
    start_app,
    status,
    stop_app,
    up,
)

__all__ = [
    "SERVICES",
    "Reporter",
    "ServiceStatus",
    "StackError",
    "StackLayout",
    "apps_status",
    "down",
    "log_tail",
    "reset",
    "start_app",
    "status",
    "stop_app",
    "up",
]
