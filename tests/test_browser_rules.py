# ruff: noqa: F811 — the shared browser fixtures (tests/browser_support.py) are imported by name
"""The rules page (/rules/) in headless Chromium, against a real daphne and real Redis.

The server loads the Sigma rules of ../shared/data/sigma (`manage.py sigma_rules` records them)
next to the built-in rules. Users (password `Passw0rd!x`, created in the server's database):
- `analyst` — ships a "log cleared" event (1102) through the API, so two rules have a hit
- `viewer`  — reads the page: coverage, the rules, one rule; no admin link
- `admin`   — disables a rule through the API (the page shows it off)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser_support import (  # noqa: F401 (fixtures)
    CHROMIUM,
    PASSWORD,
    LiveServer,
    browser,
    open_page,
)
from tests.detection_helpers import SIGMA_DIR

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

VIEWPORT = {"width": 1366, "height": 900}
WAIT = 15_000  # ms; Playwright polls until then, nothing is asserted about time


@pytest.fixture(scope="module")
def server():
    srv = LiveServer()
    srv.env["SIGMA_RULES_DIR"] = str(SIGMA_DIR)
    srv.prepare()
    srv.manage("sigma_rules")
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def log_cleared(server) -> None:
    event = {
        "computer": "DC-RULES",
        "event_code": 1102,
        "severity": 4,
        "message": "The audit log was cleared",
        "source_type": "Windows Security",
        "raw": {"SubjectUserName": "mallory", "Channel": "Security"},
    }
    answer = server.api("POST", "/events/", server.login("analyst"), json=event)
    assert answer.status_code == 201, answer.text


@pytest.fixture
def page(open_page):
    return open_page()


def sign_in(page: Page, server: LiveServer, user: str, path: str = "/rules/") -> None:
    page.goto(f"{server.url}{path}")
    page.fill("#signin-username", user)
    page.fill("#signin-password", PASSWORD)
    page.click("#signin-submit")
    expect(page.locator("#app")).to_be_visible(timeout=WAIT)


def test_coverage_rules_and_one_rule(server, log_cleared, page):
    sign_in(page, server, "viewer")
    tile = page.locator('.tile[data-technique="T1070.001"]')
    expect(tile).to_be_visible(timeout=WAIT)
    expect(tile).to_have_class("tile covered")
    expect(page.locator("#coverage-note")).to_contain_text("techniques have an enabled rule")

    tile.click()
    rows = page.locator("#rules tr")
    expect(rows.first).to_be_visible(timeout=WAIT)
    expect(page.locator("#f-technique")).to_have_value("T1070.001")
    assert "technique=T1070.001" in page.url
    builtin = page.locator('#rules tr[data-rule="builtin.audit_log_cleared"]')
    expect(builtin.locator("td").nth(4)).to_have_text("1", timeout=WAIT)  # alerts 24 h
    expect(builtin.locator("td").nth(6)).not_to_have_text("never")  # last hit

    builtin.locator("a").click()
    expect(page.locator("#detail-name")).to_have_text("Audit log cleared", timeout=WAIT)
    expect(page.locator("#detail-text")).to_contain_text("event_ids: [104, 1102]")
    expect(page.locator("#detail-facts")).to_contain_text("T1070.001")
    expect(page.locator("#detail-admin")).to_be_hidden()
    assert "rule=builtin.audit_log_cleared" in page.url

    # Linkable: the same URL opens the same rule and filter.
    page.goto(page.url)
    expect(page.locator("#detail-name")).to_have_text("Audit log cleared", timeout=WAIT)
    expect(page.locator("#f-technique")).to_have_value("T1070.001")


def test_a_disabled_rule_shows_off_and_admins_get_the_admin_link(server, page):
    admin = server.login("admin")
    answer = server.api("PATCH", "/rules/builtin.dcsync/", admin, json={"enabled": False})
    assert answer.status_code == 200, answer.text
    try:
        sign_in(page, server, "admin", "/rules/?q=dcsync&source=builtin")
        row = page.locator('#rules tr[data-rule="builtin.dcsync"]')
        expect(row.locator("td").nth(3)).to_have_text("off", timeout=WAIT)
        tile = page.locator('.tile[data-technique="T1003.006"]')
        expect(tile).to_contain_text("off", timeout=WAIT)
        row.locator("a").click()
        link = page.locator("#detail-admin")
        expect(link).to_be_visible(timeout=WAIT)
        assert link.get_attribute("href") == "/admin/alerts/detectionrule/?rule_id=builtin.dcsync"
    finally:
        server.api("PATCH", "/rules/builtin.dcsync/", admin, json={"enabled": True})
