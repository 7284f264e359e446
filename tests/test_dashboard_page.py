"""The dashboard page view and the admin's WebSocket credential endpoint (no browser).

Users: `admin` — group admin; made staff here to use the Django admin. `viewer` — not staff.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Session
from accounts.tokens import InvalidToken
from realtime.tickets import redeem_ticket
from siem.admin_live import ADMIN_LIVE_SESSION_LIFETIME_SEC

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/dashboard/"])
def test_dashboard_page_is_served_without_any_secret_and_with_a_strict_csp(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-api-base="/api/v1"' in html
    assert 'data-ws-path="/ws/dashboard"' in html
    assert "siem/js/dashboard.js" in html
    assert "eyJ" not in html and "csrfmiddlewaretoken" not in html
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "connect-src 'self' ws://testserver wss://testserver" in csp
    assert "http" not in html.split("<body", 1)[0].replace("http-equiv", "")  # no CDN


def test_dashboard_static_modules_are_served(client):
    for name in ("dashboard.js", "live.js", "api.js", "feeds.js", "chart.js", "dom.js"):
        response = client.get(f"/static/siem/js/{name}")
        assert response.status_code == 200, name


def test_admin_live_ticket_refuses_anonymous_and_non_staff_users(viewer):
    anonymous = Client(enforce_csrf_checks=False)
    assert anonymous.post("/admin/live-ticket/").status_code == 403
    signed_in = Client(enforce_csrf_checks=False)
    signed_in.force_login(viewer)
    response = signed_in.post("/admin/live-ticket/")
    assert response.status_code == 403
    assert response.json() == {"detail": "A signed-in staff session is required."}
    assert not Session.objects.filter(user=viewer).exists()


def test_admin_live_ticket_requires_post_and_the_csrf_token(admin_user):
    admin_user.is_staff = True
    admin_user.save()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    assert browser.get("/admin/live-ticket/").status_code == 405
    assert browser.post("/admin/live-ticket/").status_code == 403  # no CSRF token
    assert not Session.objects.filter(user=admin_user).exists()


def test_admin_live_ticket_issues_a_one_time_ticket_bound_to_a_short_revocable_session(
    admin_user,
):
    admin_user.is_staff = True
    admin_user.save()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    browser.get("/admin/")
    csrf = browser.cookies["csrftoken"].value

    response = browser.post("/admin/live-ticket/", headers={"X-CSRFToken": csrf})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert set(body) == {"ticket", "expires_in"}  # a ticket, never a bearer token
    assert body["expires_in"] == 30
    identity = redeem_ticket(body["ticket"])
    assert identity.user == admin_user
    assert identity.session.user_agent == "django-admin live alert list"
    lifetime = identity.session.expires_at - timezone.now()
    assert timedelta(seconds=590) < lifetime <= timedelta(seconds=ADMIN_LIVE_SESSION_LIFETIME_SEC)
    with pytest.raises(InvalidToken):
        redeem_ticket(body["ticket"])  # single use


def test_admin_live_tickets_share_one_session_until_it_nears_its_end(admin_user):
    admin_user.is_staff = True
    admin_user.save()
    browser = Client()
    browser.force_login(admin_user)

    first = redeem_ticket(browser.post("/admin/live-ticket/").json()["ticket"]).session
    second = redeem_ticket(browser.post("/admin/live-ticket/").json()["ticket"]).session
    assert first == second
    Session.objects.filter(pk=first.pk).update(expires_at=timezone.now() + timedelta(seconds=30))
    third = redeem_ticket(browser.post("/admin/live-ticket/").json()["ticket"]).session
    assert third != first
    assert Session.objects.filter(user=admin_user).count() == 2
