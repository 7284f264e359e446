# ruff: noqa: F811 — the shared browser fixtures (tests/browser_support.py) are imported by name
"""The alert and incident pages in headless Chromium, against a real daphne and real Redis, with
alerts raised by the real ingest and detection path from ../shared/data attack samples.

Users (password `Passw0rd!x`, created in the server's own database): `analyst` (triages).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from playwright.sync_api import Page, expect

from tests.browser_support import (  # noqa: F401 (fixtures)
    CHROMIUM,
    PASSWORD,
    ROOT,
    LiveServer,
    browser,
    open_page,
)

pytestmark = [
    pytest.mark.browser,
    # The first test also imports the attack samples (ingest + detection) on a shared machine.
    pytest.mark.timeout(600),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

WAIT = 20_000  # ms; Playwright polls until then, nothing is asserted about time
SAMPLES = ROOT.parent / "shared/data/windows/attack-samples/credential-access.jsonl"


@pytest.fixture(scope="module")
def server():
    srv = LiveServer()
    srv.prepare()
    srv.manage("import_events", str(SAMPLES), timeout=600)  # ingest → detection → alerts
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def token(server) -> str:
    return server.login("analyst")


@pytest.fixture(scope="module")
def alert(server, token) -> dict:
    """The detection alert with the most occurrences that names a user (a real attack)."""
    page = server.api("GET", "/alerts/?page_size=500", token).json()["results"]
    candidates = []
    for row in page:
        if not row["rule_id"] or row["occurrence_count"] < 2:
            continue
        detail = server.api("GET", f"/alerts/{row['alert_id']}/", token).json()
        if detail["entities"]["users"] and detail["entities"]["hosts"]:
            candidates.append(detail)
    assert candidates, f"no multi-event alert with a user among {[r['rule_id'] for r in page]}"
    return max(candidates, key=lambda a: a["occurrence_count"])


def sign_in_at(page: Page, url: str) -> None:
    page.goto(url)
    page.fill("#signin-username", "analyst")
    page.fill("#signin-password", PASSWORD)
    page.press("#signin-password", "Enter")  # the keyboard, as an analyst would
    expect(page.locator("#app")).to_be_visible(timeout=WAIT)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT)
    expect(page.locator("#app")).to_have_attribute("data-loaded", "loaded", timeout=WAIT)


def test_the_alert_page_shows_its_events_entities_and_pivots_to_hunting(server, alert, open_page):
    page = open_page()
    sign_in_at(page, f"{server.url}/alerts/{alert['alert_id']}/")
    expect(page.locator("#alert-title")).to_have_text(alert["title"])
    count = alert["occurrence_count"]
    expect(page.locator("#events-note")).to_have_text(re.compile(rf"^1–\d+ of {count}$"))
    expect(page.locator("#event-rows tr.event-row")).to_have_count(min(count, 25))
    for technique in alert["mitre"]:
        expect(page.locator("#mitre")).to_contain_text(f"{technique['id']} {technique['name']}")
    expect(page.locator("#rule")).to_contain_text(alert["rule"]["name"])
    rule_link = page.locator("#rule a", has_text=alert["rule"]["name"])
    rule_href = "/rules/?" + urlencode({"rule": alert["rule"]["id"]})
    expect(rule_link).to_have_attribute("href", rule_href)
    user = alert["entities"]["users"][0]
    expect(page.locator('#entities dd[data-entity="users"]')).to_contain_text(user)

    # The raw record reads field by field.
    page.locator("#event-rows tr.event-row button").first.click()
    raw = page.locator("#event-rows tr.raw-row").first
    expect(raw).to_be_visible()
    expect(raw.locator("dt", has_text=re.compile(r"^EventID$"))).to_have_count(1)

    # The rule reads in full.
    page.locator("#rule-text-box summary").click()
    expect(page.locator("#rule-text")).to_contain_text(alert["rule"]["id"])

    host = alert["entities"]["hosts"][0]
    page.locator('#entities dd[data-entity="hosts"] a').first.click()
    page.wait_for_url(re.compile(r"/events/\?q="), timeout=WAIT)
    query = parse_qs(urlparse(page.url).query)["q"][0]
    assert query in (f"computer:{host}", f'computer:"{host}"')


def test_a_comment_appears_live_in_a_second_browser(server, alert, open_page):
    url = f"{server.url}/alerts/{alert['alert_id']}/"
    writer, reader = open_page(), open_page()
    sign_in_at(writer, url)
    sign_in_at(reader, url)
    writer.fill("#comment-text", "Checked with the helpdesk: not a planned test")
    writer.keyboard.press("Control+Enter")
    expect(writer.locator("#comments")).to_contain_text("Checked with the helpdesk")
    # The second analyst's page never reloads: the comment arrives over /ws/alerts.
    comment = reader.locator("#comments li", has_text="Checked with the helpdesk")
    expect(comment).to_have_count(1, timeout=WAIT)
    expect(comment).to_contain_text("analyst")
    expect(reader.locator("#timeline")).to_contain_text("commented", timeout=WAIT)


def test_an_incident_from_the_alert_is_worked_and_closed_with_its_alerts(server, alert, open_page):
    page = open_page()
    sign_in_at(page, f"{server.url}/alerts/{alert['alert_id']}/")
    page.click("#incident-new")
    link = page.locator("#incident-list a")
    expect(link).to_have_count(1, timeout=WAIT)
    link.click()
    page.wait_for_url(re.compile(r"/incidents/\d+/$"), timeout=WAIT)
    expect(page.locator("#app")).to_have_attribute("data-loaded", "loaded", timeout=WAIT)
    expect(page.locator("#incident-title")).to_have_text(alert["title"])
    expect(page.locator(f'#alert-rows tr[data-alert-id="{alert["alert_id"]}"]')).to_have_count(1)
    expect(page.locator('#observables dd[data-kind="host"]')).to_contain_text(
        alert["entities"]["hosts"][0]
    )

    page.fill("#task-title", "Reset the account's password")
    page.select_option("#task-assignee", "analyst")
    page.press("#task-title", "Enter")
    task = page.locator("#tasks li", has_text="Reset the account's password")
    expect(task).to_have_count(1, timeout=WAIT)
    task.locator("input[type=checkbox]").check()
    expect(task).to_have_class(re.compile(r"\bdone\b"), timeout=WAIT)
    expect(page.locator("#timeline")).to_contain_text("task added", timeout=WAIT)

    page.fill("#close-resolution", "Contained: password reset")
    expect(page.locator("#close-resolve-alerts")).to_be_checked()
    page.click("#close-incident")
    expect(page.locator("#incident-status")).to_have_text("closed", timeout=WAIT)
    row = page.locator(f'#alert-rows tr[data-alert-id="{alert["alert_id"]}"]')
    expect(row).to_have_attribute("data-status", "resolved", timeout=WAIT)

    page.goto(f"{server.url}/alerts/{alert['alert_id']}/")  # same tab: still signed in
    expect(page.locator("#alert-status")).to_have_text("resolved", timeout=WAIT)
    expect(page.locator("#alert-summary")).to_contain_text("Contained: password reset")
