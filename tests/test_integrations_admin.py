# ruff: noqa: F401, F811 - pytest fixtures imported from tests.integrations_fixtures are parameters
"""The integrations admin: admins only, the secret write-only, a test action, a read-only log.

Users (staff, not superusers): admin (manages integrations), analyst and viewer (no access).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations import services
from integrations.models import Delivery, Integration
from tests.integrations_fixtures import SECRET, task_queue

pytestmark = pytest.mark.django_db


def hook() -> Integration:
    return services.create_integration(
        actor=None,
        name="soar",
        kind="webhook",
        target="https://soar.example.test/hook",
        secret=SECRET,
    )


def form(**fields) -> dict:
    values = {
        "name": "soar",
        "kind": "webhook",
        "target": "https://soar.example.test/hook",
        "min_severity": "4",
        "categories": "[]",
        "enabled": "on",
        "new_secret": "",
    }
    return {**values, **fields}


def test_admin_adds_an_integration_with_a_write_only_secret(client, staff):
    client.force_login(staff["admin"])
    add = reverse("admin:integrations_integration_add")
    page = client.get(add)
    assert page.status_code == 200
    assert 'type="password" name="new_secret"' in page.content.decode()

    refused = client.post(add, form())
    assert refused.status_code == 200 and "webhooks are signed" in refused.content.decode()
    response = client.post(add, form(new_secret=SECRET, categories='["brute_force"]'))
    assert response.status_code == 302, response.content.decode()[:2000]
    integration = Integration.objects.get()
    assert (integration.secret, integration.categories) == (SECRET, ["brute_force"])


def test_the_change_page_never_shows_the_secret_and_an_empty_field_keeps_it(client, staff):
    integration = hook()
    client.force_login(staff["admin"])
    url = reverse("admin:integrations_integration_change", args=[integration.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert SECRET not in page.content.decode()
    assert client.post(url, form(min_severity="5")).status_code == 302
    integration.refresh_from_db()
    assert (integration.min_severity, integration.secret) == (5, SECRET)
    assert SECRET not in client.get(url).content.decode()
    changelist = client.get(reverse("admin:integrations_integration_changelist"))
    assert SECRET not in changelist.content.decode()


def test_the_admin_refuses_a_bad_target(client, staff):
    client.force_login(staff["admin"])
    page = client.post(
        reverse("admin:integrations_integration_add"),
        form(target="http://hooks.example.com/x", new_secret=SECRET),
    )
    assert page.status_code == 200 and "use https://" in page.content.decode()
    assert not Integration.objects.exists()


def test_the_test_action_queues_a_test_message(client, staff, task_queue):
    integration = hook()
    client.force_login(staff["admin"])
    response = client.post(
        reverse("admin:integrations_integration_changelist"),
        {"action": "send_test_message", "_selected_action": [str(integration.pk)]},
        follow=True,
    )
    assert "Queued a test message to 1 integration(s)" in response.content.decode()
    (delivery,) = Delivery.objects.all()
    assert (delivery.kind, delivery.status) == ("test", "pending")


@pytest.mark.parametrize("role", ["analyst", "viewer"])
def test_analysts_and_viewers_do_not_see_integrations(client, staff, role):
    integration = hook()
    client.force_login(staff[role])
    for name, args in [
        ("admin:integrations_integration_changelist", []),
        ("admin:integrations_integration_change", [integration.pk]),
        ("admin:integrations_delivery_changelist", []),
    ]:
        assert client.get(reverse(name, args=args)).status_code == 403


def test_the_delivery_log_is_read_only(client, staff):
    integration = hook()
    delivery = services.send_test(integration, actor=None)
    client.force_login(staff["admin"])
    assert client.get(reverse("admin:integrations_delivery_changelist")).status_code == 200
    url = reverse("admin:integrations_delivery_change", args=[delivery.pk])
    page = client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(url, {"status": "sent"}).status_code == 403
    assert client.get(reverse("admin:integrations_delivery_add")).status_code == 403
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"
