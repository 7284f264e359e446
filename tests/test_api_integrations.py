# ruff: noqa: F401, F811 - pytest fixtures imported from tests.integrations_fixtures are parameters
"""/api/v1/integrations/: admin-only CRUD, test message, delivery log; the secret write-only.

Callers (tests/api_helpers.py): admin (allowed), analyst, viewer, norole (403), anonymous and
agent (401).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from integrations import services
from integrations.models import Delivery, Integration
from tests.api_helpers import DENIED
from tests.integrations_fixtures import (
    SECRET,
    integration_settings,
    receiver,
    task_queue,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

FIELDS = {
    "id",
    "name",
    "kind",
    "target",
    "min_severity",
    "categories",
    "enabled",
    "has_secret",
    "created_at",
    "updated_at",
}


def existing(**fields) -> Integration:
    values = {
        "name": "soc-hook",
        "kind": "webhook",
        "target": "https://hooks.example.test/siem",
        "secret": SECRET,
    }
    return services.create_integration(actor=None, **{**values, **fields})


def paths(pk: int) -> list[tuple[str, str]]:
    one = f"/api/v1/integrations/{pk}/"
    return [
        ("get", "/api/v1/integrations/"),
        ("post", "/api/v1/integrations/"),
        ("get", one),
        ("patch", one),
        ("delete", one),
        ("post", f"{one}test/"),
        ("get", f"{one}deliveries/"),
    ]


@pytest.mark.parametrize("caller", ["analyst", "viewer", "norole", "anonymous", "agent"])
def test_only_admins_reach_any_integration_endpoint(clients, caller):
    integration = existing()
    expected = {**DENIED, "analyst": 403}[caller]
    for method, path in paths(integration.pk):
        response = getattr(clients[caller], method)(path, {}, format="json")
        assert response.status_code == expected, (method, path, response.content)
    assert Integration.objects.filter(pk=integration.pk, name="soc-hook").exists()
    assert not Delivery.objects.exists()


def test_admin_creates_a_webhook_and_never_sees_its_secret_again(clients):
    response = clients["admin"].post(
        "/api/v1/integrations/",
        {
            "name": "SOAR",
            "kind": "webhook",
            "target": "https://soar.example.test/hooks/siem",
            "min_severity": 4,
            "categories": ["brute_force", "credential_access"],
            "secret": SECRET,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == FIELDS
    assert body["has_secret"] is True and body["enabled"] is True
    assert body["categories"] == ["brute_force", "credential_access"]
    assert Integration.objects.get(pk=body["id"]).secret == SECRET
    for answer in (
        response,
        clients["admin"].get("/api/v1/integrations/"),
        clients["admin"].get(f"/api/v1/integrations/{body['id']}/"),
    ):
        assert SECRET not in answer.content.decode()


def test_patch_keeps_the_secret_unless_a_new_one_is_given(clients):
    integration = existing()
    url = f"/api/v1/integrations/{integration.pk}/"
    response = clients["admin"].patch(url, {"min_severity": 5, "enabled": False}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["min_severity"], response.json()["enabled"]) == (5, False)
    assert Integration.objects.get(pk=integration.pk).secret == SECRET
    response = clients["admin"].patch(url, {"secret": "rotated-secret-value"}, format="json")
    assert response.status_code == 200
    assert "rotated-secret-value" not in response.content.decode()
    assert Integration.objects.get(pk=integration.pk).secret == "rotated-secret-value"


def test_delete_removes_the_integration(clients):
    integration = existing()
    response = clients["admin"].delete(f"/api/v1/integrations/{integration.pk}/")
    assert response.status_code == 204
    assert not Integration.objects.exists()
    assert clients["admin"].get(f"/api/v1/integrations/{integration.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"kind": "pagerduty"}, "kind", "is not a valid choice"),
        ({"min_severity": 0}, "min_severity", "greater than or equal to 1"),
        ({"min_severity": 6}, "min_severity", "less than or equal to 5"),
        ({"target": "not a url"}, "target", "http(s):// URL"),
        ({"target": "ftp://files.example.test/x"}, "target", "http(s):// URL"),
        ({"target": "http://hooks.example.com/siem"}, "target", "use https://"),
        ({"secret": ""}, "secret", "webhooks are signed"),
        ({"kind": "telegram", "target": "my chat"}, "target", "Telegram chat id"),
        ({"kind": "email", "target": "soc@example.test, nobody"}, "target", "'nobody'"),
        ({"categories": "brute_force"}, "categories", "list"),
        ({"name": ""}, "name", "blank"),
    ],
)
def test_bad_input_gets_a_field_level_400_and_stores_nothing(clients, fields, field, reason):
    values = {
        "name": "hook",
        "kind": "webhook",
        "target": "https://hooks.example.test/x",
        "secret": SECRET,
    }
    response = clients["admin"].post("/api/v1/integrations/", {**values, **fields}, format="json")
    assert response.status_code == 400, response.content
    assert reason in " ".join(response.json()[field])
    assert not Integration.objects.exists()


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://soar/hook",
        "http://soar.corp/hook",
        "https://hooks.example.com/x",
    ],
)
def test_plain_http_is_allowed_for_loopback_and_intranet_hosts(clients, target):
    response = clients["admin"].post(
        "/api/v1/integrations/",
        {"name": "h", "kind": "webhook", "target": target, "secret": SECRET},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_a_test_message_is_queued_sent_and_listed_in_the_deliveries(
    clients, integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    integration = existing(target=f"{receiver.base}/hook")
    with django_capture_on_commit_callbacks(execute=True):
        response = clients["admin"].post(f"/api/v1/integrations/{integration.pk}/test/")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending" and response.json()["kind"] == "test"
    task_queue.run()

    (request,) = receiver.to("/hook")
    body = request.json()
    assert (body["type"], body["action"]) == ("test", "test")
    assert body["data"]["integration"] == "soc-hook"
    signature = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-SIEM-Signature"] == f"sha256={signature}"

    listed = clients["admin"].get(f"/api/v1/integrations/{integration.pk}/deliveries/")
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert (row["status"], row["http_status"], row["attempt"], row["kind"]) == (
        "sent",
        200,
        1,
        "test",
    )
    assert row["duration_ms"] is not None and row["error"] == ""
    assert SECRET not in listed.content.decode()


def test_the_schema_describes_every_integration_operation(clients):
    schema = (
        clients["admin"]
        .get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        .json()
    )
    operations = {(p, m) for p, item in schema["paths"].items() for m in item}
    assert {
        ("/api/v1/integrations/", "get"),
        ("/api/v1/integrations/", "post"),
        ("/api/v1/integrations/{integration_id}/", "get"),
        ("/api/v1/integrations/{integration_id}/", "patch"),
        ("/api/v1/integrations/{integration_id}/", "delete"),
        ("/api/v1/integrations/{integration_id}/test/", "post"),
        ("/api/v1/integrations/{integration_id}/deliveries/", "get"),
    } <= operations
    props = schema["components"]["schemas"]["Integration"]["properties"]
    assert props["secret"]["writeOnly"] is True
