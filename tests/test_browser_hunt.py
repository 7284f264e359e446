# ruff: noqa: F811 — the shared browser fixtures (tests/browser_support.py) are imported by name
"""The hunting page (/events/) in headless Chromium, against a real daphne and real Redis.

Users (password `Passw0rd!x`, created in the server's own database):
- `analyst` — group analyst: hunts, saves searches, ships the test events through the API
- `viewer`  — group viewer: sees shared searches, not private ones
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser_support import (  # noqa: F401 (fixtures)
    CHROMIUM,
    PASSWORD,
    LiveServer,
    browser,
    open_page,
    server,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

WAIT = 15_000  # ms; Playwright polls until then, nothing is asserted about time
TAG = uuid.uuid4().hex[:6]  # this run's own host names, so queries see only its events


@pytest.fixture(scope="module")
def token(server) -> str:
    return server.login("analyst")


@pytest.fixture(scope="module")
def seeded(server, token) -> dict[str, int]:
    """Four events with raw Windows fields (event time: now)."""
    events = {
        "admin_logon": {
            "computer": f"DC-{TAG}",
            "event_code": 4624,
            "severity": 2,
            "message": "An account was successfully logged on",
            "user_name": "administrator",
            "source_ip": "10.0.0.5",
            "raw": {"TargetUserName": "Administrator", "LogonType": 3, "IpAddress": "10.0.0.5"},
        },
        "bob_failed": {
            "computer": f"WS-{TAG}",
            "event_code": 4625,
            "severity": 3,
            "message": "An account failed to log on",
            "user_name": "bob",
            "raw": {"TargetUserName": "bob", "LogonType": 3},
        },
        "mimikatz": {
            "computer": f"WS-{TAG}",
            "event_code": 4688,
            "severity": 4,
            "message": "A new process has been created",
            "raw": {"CommandLine": "C:\\Tools\\mimikatz.exe sekurlsa::logonpasswords"},
        },
        "service_logon": {
            "computer": f"DC-{TAG}",
            "event_code": 4624,
            "severity": 1,
            "message": "An account was successfully logged on",
            "raw": {"TargetUserName": "svc_backup", "LogonType": 5},
        },
    }
    ids = {}
    for name, event in events.items():
        answer = server.api(
            "POST", "/events/", token, json={**event, "source_type": "Windows Security"}
        )
        assert answer.status_code == 201, answer.text
        ids[name] = answer.json()["event_id"]
    return ids


def sign_in(page: Page, server: LiveServer, path: str = "/events/", user: str = "analyst"):
    page.goto(f"{server.url}{path}")
    page.fill("#signin-username", user)
    page.fill("#signin-password", PASSWORD)
    page.click("#signin-submit")
    expect(page.locator("#app")).to_be_visible(timeout=WAIT)
    expect(page.locator("#app")).to_have_attribute("data-search", "done", timeout=WAIT)


def search(page: Page, q: str) -> None:
    page.fill("#q", q)
    page.press("#q", "Enter")
    expect(page.locator("#app")).to_have_attribute("data-search", "done", timeout=WAIT)


def shown(page: Page, seeded) -> set[str]:
    names = {str(v): k for k, v in seeded.items()}
    ids = page.locator("#results tr.event-row").evaluate_all(
        "rows => rows.map(r => r.dataset.eventId)"
    )
    return {names.get(i, i) for i in ids}


def expect_shown(page: Page, seeded, expected: set[str]) -> None:
    for name in expected:
        row = page.locator(f'#results tr.event-row[data-event-id="{seeded[name]}"]')
        expect(row).to_be_visible(timeout=WAIT)
    expect(page.locator("#results tr.event-row")).to_have_count(len(expected), timeout=WAIT)
    assert shown(page, seeded) == expected


def test_query_facet_save_load_and_live_tail(server, token, seeded, open_page):
    page = open_page()
    sign_in(page, server)

    # A query: a raw field, case-insensitive, with a wildcard on the host.
    search(page, f"LogonType:3 AND computer:*{TAG}")
    expect_shown(page, seeded, {"admin_logon", "bob_failed"})
    expect(page.locator("#hits")).to_have_text("2 matching")
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"q": [f"LogonType:3 AND computer:*{TAG}"], "range": ["24h"]}

    # Top values of TargetUserName; "−" excludes bob.
    page.fill("#facet-field", "TargetUserName")
    page.dispatch_event("#facet-field", "change")
    bob = page.locator('#facets li[data-value="bob"]')
    expect(bob).to_contain_text("1")
    bob.locator(".facet-out").click()
    expect(page.locator("#q")).to_have_value(
        f'LogonType:3 AND computer:*{TAG} AND NOT TargetUserName:"bob"'
    )
    expect_shown(page, seeded, {"admin_logon"})

    # Expand the row: the raw record, field by field, with pivots on host, user and IP.
    row = page.locator(f'#results tr[data-event-id="{seeded["admin_logon"]}"]')
    row.focus()
    page.keyboard.press("Enter")
    expect(row).to_have_attribute("aria-expanded", "true")
    detail = page.locator("#results tr.event-detail:visible")
    expect(detail).to_contain_text("TargetUserName")
    expect(detail.locator("a.pivot", has_text="Administrator")).to_have_attribute(
        "href", "/events/?q=TargetUserName%3A%22Administrator%22&range=24h"
    )

    # Save the search, run another one, then load the saved one back.
    name = f"Admin logons {TAG}"
    page.fill("#save-name", name)
    page.click("#save")
    saved = page.locator("#saved li", has_text=name)
    expect(saved).to_be_visible(timeout=WAIT)
    search(page, "mimikatz")
    expect(page.locator(f'#results tr[data-event-id="{seeded["mimikatz"]}"]')).to_be_visible()
    saved.locator(".saved-load").click()
    expect(page.locator("#q")).to_have_value(
        f'LogonType:3 AND computer:*{TAG} AND NOT TargetUserName:"bob"'
    )
    expect_shown(page, seeded, {"admin_logon"})

    # Live tail: a new matching event appears; one that does not match stays out.
    page.check("#tail")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT)
    other = server.api(
        "POST", "/events/", token,
        json={"computer": f"FS-{TAG}", "event_code": 4624, "severity": 2, "message": "x",
              "source_type": "Windows Security", "raw": {"TargetUserName": "bob", "LogonType": 3}},
    ).json()["event_id"]  # fmt: skip
    fresh = server.api(
        "POST", "/events/", token,
        json={"computer": f"WS-{TAG}", "event_code": 4624, "severity": 3,
              "message": "Network logon", "source_type": "Windows Security",
              "raw": {"TargetUserName": "eve", "LogonType": 3}},
    ).json()["event_id"]  # fmt: skip
    new_row = page.locator(f'#results tr[data-event-id="{fresh}"]')
    expect(new_row).to_be_visible(timeout=WAIT)
    expect(page.locator("#results tr.event-row").first).to_have_attribute(
        "data-event-id", str(fresh)
    )
    expect(page.locator(f'#results tr[data-event-id="{other}"]')).to_have_count(0)

    # A viewer does not see the analyst's private search.
    viewer = open_page()
    sign_in(viewer, server, user="viewer")
    expect(viewer.locator("#saved li", has_text=name)).to_have_count(0)


def test_a_syntax_error_says_where_and_a_shared_link_opens_the_same_search(
    server, seeded, open_page
):
    page = open_page()
    sign_in(page, server, path=f"/events/?q=computer%3Adc-{TAG}&range=1h")
    expect(page.locator("#q")).to_have_value(f"computer:dc-{TAG}")
    expect(page.locator("#range")).to_have_value("1h")
    expect_shown(page, seeded, {"admin_logon", "service_logon"})

    page.fill("#q", "(mimikatz OR")
    page.press("#q", "Enter")
    expect(page.locator("#q-error")).to_have_text("Query: Expected a search term at position 12")
    expect(page.locator("#q")).to_have_attribute("aria-invalid", "true")

    # The computer cell is a link to a search for that host.
    search(page, f"computer:dc-{TAG}")
    page.locator(f'#results tr[data-event-id="{seeded["admin_logon"]}"] a.pivot').first.click()
    expect(page.locator("#q")).to_have_value(f'computer:"DC-{TAG}"')
    expect_shown(page, seeded, {"admin_logon", "service_logon"})
    # `/` focuses the query box from anywhere on the page.
    page.locator("body").click(position={"x": 5, "y": 740})
    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
