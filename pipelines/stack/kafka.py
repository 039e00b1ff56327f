"""Formatting the KRaft storage of the controller and the broker, once, with the stack's SCRAM
users; and the files through which the broker, the controller and Connect read their Kafka
passwords.

The broker asks every client for a SCRAM-SHA-512 login (stack/conf/server.properties): admin,
connect, processor and reader, with passwords generated at the first `up` into
<home>/secrets/passwords.env. Their SCRAM credentials are written into the cluster's metadata
when the storage is formatted (`kafka-storage format --add-scram`); the command line that does
it is read from an argument file in the secrets folder, so no password is ever an argument of a
process (visible to every user in /proc). The broker and the controller read admin's password,
Connect reads connect's, from a file of their own (0600) through Kafka's FileConfigProvider:
the rendered configs hold a `${file:...}` reference, never a password. admin's file is in
<home>/kafka/secrets, not in <home>/secrets, whose files connector configs may read.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from confluent_kafka import KafkaException

from pipelines.kafka import clients
from pipelines.kafka.acls import ensure_acls
from pipelines.settings import KAFKA_PRINCIPALS, Settings
from pipelines.stack.configs import plain_password, private_folder, write_private
from pipelines.stack.errors import StackError
from pipelines.stack.layout import StackLayout

__all__ = ["KAFKA_SECRET_FILES", "format_storage", "grant_acls", "new_cluster_id",
           "write_kafka_secrets"]

SCRAM_MECHANISM = "SCRAM-SHA-512"
# The file each JVM reads its Kafka password from (key `password`), and whose password it holds:
# admin's for the broker and the controller (in <home>/kafka/secrets, out of the reach of
# Connect's file provider), connect's for Connect (in <home>/secrets).
KAFKA_SECRET_FILES = {"kafka-admin.properties": "admin", "kafka-connect.properties": "connect"}
# Written beside the controller's storage once it is formatted with the SCRAM users: a storage
# without it was formatted before the broker asked for logins.
SCRAM_MARKER = "scram-users"


def write_kafka_secrets(settings: Settings, layout: StackLayout) -> None:
    """The files of KAFKA_SECRET_FILES (0600), at every `up`."""
    for name, principal in KAFKA_SECRET_FILES.items():
        folder = private_folder(kafka_secret_folder(layout, principal))
        write_private(folder / name, f"password={_checked(settings, principal)}\n")


def kafka_secret_folder(layout: StackLayout, principal: str) -> Path:
    return layout.kafka_secrets if principal == "admin" else layout.secrets


def _checked(settings: Settings, principal: str) -> str:
    """A principal's password, refused when it holds a character that a JAAS option, a
    properties file or kafka-storage's --add-scram would take for syntax."""
    return plain_password(settings, f"kafka_{principal}_password", ' \t\r\n"\\,[]=;$#!:{}\'',
                          service="kafka")


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return text


def format_storage(java: Path, layout: StackLayout, settings: Settings) -> bool:
    """kafka-storage format: the controller as a quorum of one (--standalone), with the SCRAM
    users, the broker with the same cluster id; unless they are formatted already. A storage
    formatted before the broker asked for logins has no users: refused, with the reset to do."""
    controller = layout.controller_data / "meta.properties"
    broker = layout.kafka_data / "meta.properties"
    marker = layout.controller_data.parent / SCRAM_MARKER
    if controller.exists() and broker.exists():
        if not marker.exists():
            raise StackError(
                "this stack's Kafka was formatted before its broker asked clients to log in "
                "(SASL/SCRAM, stack/conf/server.properties): its metadata has no SCRAM users, "
                "so no client could log in. Start afresh with `seatflow stack reset` (it wipes "
                "the stack's data and passwords), then `seatflow stack up`.", service="kafka")
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
    users = scram_arguments(settings)
    # The users are records of the bootstrap metadata, which the controller holds.
    _format(java, layout, "controller.properties", layout.controller_data, cluster_id,
            "--standalone", *users)
    _format(java, layout, "server.properties", layout.kafka_data, cluster_id)
    write_private(marker, "".join(f"{name}\n" for name in KAFKA_PRINCIPALS))
    return True


def scram_arguments(settings: Settings) -> list[str]:
    """kafka-storage's --add-scram arguments: one SCRAM-SHA-512 user per principal."""
    args = []
    for name in KAFKA_PRINCIPALS:
        args += ["--add-scram",
                 f"{SCRAM_MECHANISM}=[name={name},password={_checked(settings, name)}]"]
    return args


def argfile_line(arg: str) -> str:
    """One argument of a java launcher's @argfile: quoted, its backslashes and quotes escaped."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"\n'


def _format(java: Path, layout: StackLayout, properties: str, data: Path, cluster_id: str,
            *flags: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    app = ["kafka.tools.StorageTool", "format", *flags, "--cluster-id", cluster_id,
           "--config", str(layout.conf / properties)]
    # The main class and its arguments come from an argument file (0600, removed after): the
    # SCRAM passwords are never on a command line. The launcher expands an @file given before
    # the main class, and reads the main class from it.
    argfile = layout.kafka_secrets / "kafka-storage.args"
    private_folder(layout.kafka_secrets)
    write_private(argfile, "".join(argfile_line(a) for a in app))
    cmd = [str(java), "-Xmx256m",
           f"-Dlog4j2.configurationFile={layout.conf / 'log4j2.properties'}",
           "-cp", f"{layout.kafka_libs}/*", f"@{argfile}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        argfile.unlink(missing_ok=True)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-800:]
        for flag in flags:  # the tool may repeat an argument it could not parse
            if flag.startswith(SCRAM_MECHANISM):
                output = output.replace(flag, f"{SCRAM_MECHANISM}=[...]")
        raise StackError(f"formatting Kafka's storage ({properties}) failed: {output}",
                         service="kafka")


def grant_acls(settings: Settings) -> int:
    """The principals' ACLs (pipelines/kafka/acls.py), created as admin; how many."""
    if settings.kafka_username != "admin":
        raise StackError("the stack's ACLs are created as admin, but the Kafka login is "
                         f"{settings.kafka_username!r} (SEATFLOW_KAFKA_USERNAME)", service="kafka")
    try:
        return ensure_acls(clients.admin(settings, log_level=4), settings)
    except KafkaException as e:
        raise StackError(f"creating Kafka's ACLs failed: {e}", service="kafka") from e
