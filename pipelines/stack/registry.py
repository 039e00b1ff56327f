"""The local registry's users: HTTP basic auth against Quarkus' embedded users, role-based.

Apicurio Registry 3.3 is built with `quarkus.security.users.embedded.enabled=true` (a build-time
property of its application.properties); the users, their roles and how their passwords are
kept are runtime properties. Each user of REGISTRY_PRINCIPALS gets a line
`quarkus.security.users.embedded.users.<user>=HEX(MD5(<user>:<realm>:<password>))` (plain-text
false, digest-md5) and the Apicurio role that says what it may do. The file is written at every
`up` into <home>/registry/secrets (0600, its folder 0700: apart from <home>/secrets, which
connector configs may read) and given to the registry as a second -Dquarkus.config.locations
entry: no password, and no hash, is in the rendered apicurio-registry.properties.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipelines.settings import REGISTRY_PRINCIPALS, Settings
from pipelines.stack.configs import plain_password, private_folder, write_private
from pipelines.stack.layout import StackLayout

__all__ = ["REALM", "USERS_FILE", "digest", "users_file", "users_properties",
           "write_registry_users"]

# The realm part of each stored digest: the build fixes it (quarkus.security.users.embedded.
# realm-name is a build-time property; set at runtime, Quarkus warns and keeps "Quarkus").
REALM = "Quarkus"
USERS_FILE = "registry-users.properties"
_PREFIX = "quarkus.security.users.embedded"


def digest(user: str, password: str, realm: str = REALM) -> str:
    """What Quarkus' embedded realm keeps of a password (digest-md5): HEX(MD5(user:realm:pw))."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324


def users_properties(passwords: dict[str, str]) -> str:
    """The registry's users file: a digest and a role per user of `passwords` (user -> password),
    each user one of REGISTRY_PRINCIPALS."""
    lines = ["# Written by `seatflow stack up`: the registry's users (pipelines/stack/registry.py).",
             f"{_PREFIX}.plain-text=false",
             f"{_PREFIX}.algorithm=digest-md5"]
    for user, password in sorted(passwords.items()):
        if user not in REGISTRY_PRINCIPALS:
            raise ValueError(f"{user!r} is not a registry user: one of "
                             f"{', '.join(REGISTRY_PRINCIPALS)}")
        if not password:
            raise ValueError(f"the registry user {user} has no password")
        lines.append(f"{_PREFIX}.users.{user}={digest(user, password)}")
        lines.append(f"{_PREFIX}.roles.{user}={REGISTRY_PRINCIPALS[user]}")
    return "\n".join(lines) + "\n"


def users_file(layout: StackLayout) -> Path:
    return layout.registry_secrets / USERS_FILE


def write_registry_users(settings: Settings, layout: StackLayout) -> Path:
    """The users file (0600, at every `up`), from the users' passwords in Settings."""
    passwords = {}
    for user in REGISTRY_PRINCIPALS:
        # The writer's password reaches Connect's converter through ${env:...}; a ':' would end
        # the user in basic auth's user:password.
        passwords[user] = plain_password(settings, f"registry_{user}_password", ' \t\r\n:"\\',
                                         service="registry")
    private_folder(layout.registry_secrets)
    path = users_file(layout)
    write_private(path, users_properties(passwords))
    return path
