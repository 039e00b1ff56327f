"""The registry on the real stack: basic auth on every request but system info, role-based
(reader reads only, writer registers, admin changes the global rules), the project's clients
with Settings' credentials, and no password in its configs, logs or answers."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Iterator

import pytest
import requests
from pydantic import SecretStr

from pipelines.avro import registry_client, registry_session
from pipelines.avro.schemas import SchemaRegistry
from pipelines.settings import GENERATED_SECRETS, Settings, read_generated_secrets
from pipelines.stack import health
from pipelines.stack.configs import APP_LOGINS
from pipelines.stack.layout import StackLayout
from pipelines.stack.registry import users_file

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCHEMA = json.dumps({"type": "record", "name": "AuthProbe", "namespace": "seatflow.test",
                     "fields": [{"name": "seat_id", "type": "int"}]})
JSON = {"Content-Type": "application/json"}


def _login(settings: Settings, user: str) -> tuple[str, str]:
    return user, settings.password(f"registry_{user}_password")


@pytest.fixture
def subject(running_stack: Settings) -> Iterator[str]:
    """A subject of this test's own, deleted (permanently) afterwards."""
    name = f"seatflow-auth-test-{uuid.uuid4().hex[:8]}-value"
    yield name
    admin = _login(running_stack, "admin")
    url = f"{running_stack.ccompat_url}/subjects/{name}"
    requests.delete(url, auth=admin, timeout=10)
    requests.delete(url, params={"permanent": "true"}, auth=admin, timeout=10)


def test_a_request_without_credentials_is_refused(running_stack: Settings, subject: str) -> None:
    base = running_stack.registry_url
    reads = ("/apis/ccompat/v7/subjects", "/apis/ccompat/v7/schemas/ids/1",
             "/apis/ccompat/v7/config", "/apis/registry/v3/search/artifacts",
             "/apis/registry/v3/groups", "/apis/registry/v2/search/artifacts")
    for path in reads:
        response = requests.get(f"{base}{path}", timeout=10)
        assert response.status_code == 401, (path, response.status_code, response.text)
    posted = requests.post(f"{running_stack.ccompat_url}/subjects/{subject}/versions",
                           json={"schema": SCHEMA}, timeout=10)
    assert posted.status_code == 401, posted.text
    deleted = requests.delete(f"{running_stack.ccompat_url}/subjects/{subject}", timeout=10)
    assert deleted.status_code == 401, deleted.text
    # Open to anyone, as Apicurio leaves it (the version, nothing stored).
    assert requests.get(f"{base}/apis/registry/v3/system/info", timeout=10).status_code == 200


def test_a_wrong_password_is_refused(running_stack: Settings) -> None:
    url = f"{running_stack.ccompat_url}/subjects"
    reader, password = _login(running_stack, "reader")
    for auth in ((reader, password + "x"), (reader, ""), ("someone-else", password),
                 ("admin", password)):
        response = requests.get(url, auth=auth, timeout=10)
        assert response.status_code == 401, (auth[0], response.status_code)
    wrong = running_stack.model_copy(update={"registry_password": SecretStr("not-it")})
    assert health.registry(wrong) == "HTTP 401"


def test_the_reader_reads_only(running_stack: Settings, subject: str) -> None:
    settings = running_stack
    reader, writer = _login(settings, "reader"), _login(settings, "writer")
    versions = f"{settings.ccompat_url}/subjects/{subject}/versions"
    refused = requests.post(versions, json={"schema": SCHEMA}, auth=reader, timeout=10)
    assert refused.status_code == 403, refused.text
    posted = requests.post(versions, json={"schema": SCHEMA}, auth=writer, timeout=10)
    assert posted.status_code == 200, posted.text
    schema_id = posted.json()["id"]
    got = requests.get(f"{settings.ccompat_url}/schemas/ids/{schema_id}", auth=reader, timeout=10)
    assert got.status_code == 200 and "AuthProbe" in got.json()["schema"]
    for method, path, body in (
            ("PUT", f"/config/{subject}", {"compatibility": "NONE"}),
            ("DELETE", f"/subjects/{subject}", None),
            ("POST", "/subjects/seatflow-auth-test-other-value/versions", {"schema": SCHEMA})):
        response = requests.request(method, f"{settings.ccompat_url}{path}", json=body,
                                    auth=reader, timeout=10)
        assert response.status_code == 403, (method, path, response.status_code)
    v3 = {"artifactId": f"{subject}-v3", "artifactType": "AVRO",
          "firstVersion": {"content": {"content": SCHEMA, "contentType": "application/json"}}}
    response = requests.post(f"{settings.registry_url}/apis/registry/v3/groups/default/artifacts",
                             json=v3, auth=reader, timeout=10)
    assert response.status_code == 403, response.text
    # The global rules are the admin's.
    global_config = f"{settings.ccompat_url}/config"
    current = requests.get(global_config, auth=reader, timeout=10)
    assert current.status_code == 200
    level = current.json()["compatibilityLevel"]
    for auth, status in ((reader, 403), (writer, 403), (_login(settings, "admin"), 200)):
        response = requests.put(global_config, json={"compatibility": level}, auth=auth,
                                timeout=10)
        assert response.status_code == status, (auth[0], response.status_code)


def test_the_projects_clients_send_the_settings_credentials(running_stack: Settings) -> None:
    settings = running_stack
    assert settings.registry_auth() == _login(settings, "admin")
    assert isinstance(registry_client(settings).get_subjects(), list)
    with registry_session(settings) as session:
        me = session.get(f"{settings.registry_url}/apis/registry/v3/users/me", timeout=10)
    assert me.status_code == 200 and me.json()["username"] == "admin"
    assert SchemaRegistry.from_settings(settings).reachable()
    assert health.registry(settings) is None
    reader = settings.model_copy(update={"registry_username": "reader"})
    assert health.registry(reader) is None
    assert settings.registry_login_as("writer").registry_auth() == _login(settings, "writer")
    # The supervised processor and serve look schemas up as the reader.
    assert all(env["SEATFLOW_REGISTRY_USERNAME"] == "reader" for env in APP_LOGINS.values())


def test_the_users_file_is_private_and_holds_no_password(running_stack: Settings) -> None:
    layout = StackLayout.of(running_stack)
    path = users_file(layout)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    passwords = {u: running_stack.password(f"registry_{u}_password")
                 for u in ("admin", "writer", "reader")}
    for folder in (layout.conf, layout.logs, path.parent):
        for file in folder.glob("*"):
            if not file.is_file() or file.suffix == ".jsa":
                continue
            text = file.read_text(errors="replace")
            leaked = {u for u, p in passwords.items() if p in text}
            # Connect's environment (${env:...} of the converter) holds the writer's, as it
            # holds the Debezium role's: supervisord.conf, 0600.
            allowed = {"writer"} if file == layout.supervisord_conf else set()
            assert leaked <= allowed, (file, leaked)
    assert stat.S_IMODE(layout.supervisord_conf.stat().st_mode) == 0o600


def test_no_registry_log_line_or_answer_holds_a_password(pipeline: Settings) -> None:
    """After a deploy (the writer registered schemas, Connect's converter logged in): no
    generated password in the registry's or Connect's log, nor in what the registry answers."""
    settings = pipeline
    secrets = {*read_generated_secrets(settings.home).values(),
               *(settings.password(field) for field in GENERATED_SECRETS)}
    layout = StackLayout.of(settings)
    for service in ("registry", "connect"):
        text = layout.log_of(service).read_text(errors="replace")
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{service}.log holds {len(leaked)} generated password(s)"
    with registry_session(settings) as session:
        for path in ("/apis/ccompat/v7/subjects", "/apis/ccompat/v7/config",
                     "/apis/registry/v3/system/info", "/apis/registry/v3/users/me",
                     "/apis/registry/v3/search/artifacts", "/apis/registry/v3/admin/config/properties"):
            response = session.get(f"{settings.registry_url}{path}", timeout=10)
            assert response.status_code == 200, (path, response.status_code)
            leaked = [s for s in secrets if s in response.text]
            assert not leaked, f"GET {path} holds {len(leaked)} generated password(s)"
