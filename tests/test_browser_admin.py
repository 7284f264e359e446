"""The live admin alert list in headless Chromium, against a real daphne and real Redis.

Users (password `Passw0rd!x`): `admin` — group admin, staff (signs in to the Django admin);
`analyst` — group analyst, posts and triages alerts through the API meanwhile.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@pytest.fixture(scope="module")
def server():
    srv = LiveServer()
    srv.prepare()
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture
def page(server):
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def admin_sign_in(page, server) -> None:
    page.goto(f"{server.url}/admin/login/?next=/admin/alerts/alert/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/alerts/alert/$"))


def post_alert(server, token, title, severity=4) -> int:
    answer = server.api(
        "POST",
        "/alerts/",
        token,
        json={
            "title": title,
            "severity": severity,
            "category": "lateral_movement",
            "hostname": "FS-02",
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["alert_id"]


def test_new_alerts_appear_in_a_banner_and_status_changes_update_rows_in_place(server, page):
    token = server.login("analyst")
    listed = post_alert(server, token, f"Already listed {uuid.uuid4().hex[:6]}")
    admin_sign_in(page, server)
    banner = page.locator("#live-alerts")
    expect(banner).to_have_attribute("data-state", "live")
    expect(page.locator("#live-alerts-new")).to_be_hidden()

    title = f"Pass-the-hash from FS-02 {uuid.uuid4().hex[:6]}"
    arrived = post_alert(server, token, title, severity=5)
    expect(page.locator("#live-alerts-count")).to_have_text(
        "1 new alert since this list was loaded"
    )
    link = page.locator(f'#live-alerts-list li[data-alert-id="{arrived}"] a')
    expect(link).to_have_text(f"#{arrived} {title}")
    expect(link).to_have_attribute("href", f"/admin/alerts/alert/{arrived}/change/")
    expect(page.locator(f'#live-alerts-list li[data-alert-id="{arrived}"] .live-sev')).to_have_text(
        "critical"
    )

    row = page.locator(f'#result_list tr:has(input.action-select[value="{listed}"])')
    expect(row.locator("td.field-status")).to_have_text("new")
    answer = server.api("POST", f"/alerts/{listed}/acknowledge/", token)
    assert answer.status_code == 200, answer.text
    expect(row.locator("td.field-status")).to_have_text("acknowledged")
    expect(row.locator("td.field-assigned_to")).to_have_text("analyst")

    page.click("#live-alerts-reload")
    expect(page.locator(f'#result_list input.action-select[value="{arrived}"]')).to_be_attached()
    expect(page.locator("#live-alerts-new")).to_be_hidden()


REVOKE_ADMIN_LIVE_SESSIONS = (
    "from accounts.models import Session\nfrom accounts.services import revoke_session\n"
    "for s in Session.objects.active().filter(user__username='admin'):\n"
    "    revoke_session(s, reason='test')"
)


def test_the_live_list_reconnects_with_a_fresh_credential_when_its_token_ends(server, page):
    admin_sign_in(page, server)
    expect(page.locator("#live-alerts")).to_have_attribute("data-state", "live")
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.evaluate(
        """() => {
            window.__states = [];
            const banner = document.getElementById('live-alerts');
            new MutationObserver(() => window.__states.push(banner.dataset.state))
                .observe(banner, { attributes: true, attributeFilter: ['data-state'] });
        }"""
    )
    # What expiry does after 10 minutes, revocation does now: the socket is closed with 4003.
    server.shell(REVOKE_ADMIN_LIVE_SESSIONS)
    page.wait_for_function("() => window.__states.at(-1) === 'live'", timeout=20_000)
    states = page.evaluate("window.__states")
    assert states[0] == "reconnecting" and "auth" not in states, states
    assert len(sockets) == 1  # one new socket, opened with a new credential
    title = f"After the new credential {uuid.uuid4().hex[:6]}"
    post_alert(server, server.login("analyst"), title)
    expect(page.locator("#live-alerts-list")).to_contain_text(title)


def test_the_live_list_stops_when_the_admin_session_ends(server, page):
    admin_sign_in(page, server)
    expect(page.locator("#live-alerts")).to_have_attribute("data-state", "live")
    # Sign out in another tab of the same browser: the next credential request is refused.
    other = page.context.new_page()
    other.goto(f"{server.url}/admin/")
    with other.expect_navigation(url="**/admin/logout/"):
        other.click("#logout-form button")
    # Closing a tab in the middle of the logout navigation can hang Chromium's close: wait.
    other.wait_for_load_state("load")
    other.close()
    # Revoke the socket's short-lived session so the page must ask for a new credential.
    server.shell(REVOKE_ADMIN_LIVE_SESSIONS)
    expect(page.locator("#live-alerts")).to_have_attribute("data-state", "auth", timeout=20_000)
    expect(page.locator("#live-alerts-state")).to_contain_text("admin session has ended")
