# ruff: noqa: F811 — the shared browser fixtures (tests/browser_support.py) are imported by name
"""The live dashboard page in headless Chromium, against a real daphne and real Redis.

Users (password `Passw0rd!x`, created in the server's own database):
- `analyst` — group analyst: triages alerts (sees Acknowledge / Resolve)
- `viewer`  — group viewer: reads only (sees no triage buttons)
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

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
VIEWPORT = {"width": 1600, "height": 900}


@pytest.fixture(scope="module")
def analyst_token(server) -> str:
    return server.login("analyst")


def sign_in(page: Page, server: LiveServer, username: str = "analyst") -> None:
    page.goto(f"{server.url}/")
    page.fill("#signin-username", username)
    page.fill("#signin-password", PASSWORD)
    page.click("#signin-submit")
    expect(page.locator("#app")).to_be_visible(timeout=WAIT)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT)
    expect(page.locator("#app")).to_have_attribute("data-snapshot", "loaded", timeout=WAIT)


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:6]}"


def post_event(server, token, message, severity=3, computer="WS-001") -> int:
    answer = server.api(
        "POST",
        "/events/",
        token,
        json={
            "computer": computer,
            "event_code": 4625,
            "severity": severity,
            "message": message,
            "source_type": "Windows Security",
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["event_id"]


def post_alert(server, token, title, severity=4, hostname="WS-001") -> int:
    answer = server.api(
        "POST",
        "/alerts/",
        token,
        json={
            "title": title,
            "severity": severity,
            "category": "brute_force",
            "hostname": hostname,
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["alert_id"]


def counter(page: Page, stat_id: str) -> int:
    return int(page.inner_text(f"#stat-{stat_id}").replace(",", ""))


def alert_row(page: Page, alert_id: int):
    return page.locator(f'#alert-feed li[data-alert-id="{alert_id}"]')


# --- sign-in and counters --------------------------------------------------------------------
def test_wrong_password_is_refused_with_a_reason_and_the_right_one_shows_the_counters(
    server, open_page, analyst_token
):
    page = open_page()
    page.goto(f"{server.url}/")
    page.fill("#signin-username", "analyst")
    page.fill("#signin-password", "not-the-password")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text("Wrong user name or password.")
    expect(page.locator("#app")).to_be_hidden()

    post_event(server, analyst_token, unique("Counted event"), severity=5)
    stats = server.api("GET", "/dashboard/statistics/", analyst_token).json()
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    sign_in(page, server)
    # The socket opens with a one-time ticket: the access token never sits in a URL.
    assert len(sockets) == 1
    assert "ticket=wst_" in sockets[0] and "token=" not in sockets[0]
    for group in ("events", "alerts", "incidents", "agents"):
        for key, value in stats[group].items():
            if page.locator(f"#stat-{group}-{key}").count():
                expect(page.locator(f"#stat-{group}-{key}")).to_have_text(f"{value:,}")
    assert stats["events"]["total_24h"] >= 1
    expect(page.locator("#whoami")).to_have_text("analyst · analyst")
    # The token lives in this tab's sessionStorage, not in a cookie.
    assert page.evaluate("sessionStorage.getItem('siem.token')").startswith("eyJ")
    assert page.context.cookies() == []


def test_a_throttled_sign_in_shows_the_servers_reason(server, open_page):
    page = open_page()
    page.goto(f"{server.url}/")
    # A user name of its own: the throttle counts failures per name (and per address, higher).
    for _ in range(8):
        page.fill("#signin-username", "ghost")
        page.fill("#signin-password", "wrong")
        page.click("#signin-submit")
        expect(page.locator("#signin-submit")).to_be_enabled()
        if "Too many" in page.inner_text("#signin-error"):
            break
    expect(page.locator("#signin-error")).to_contain_text(
        "Sign-in failed: Too many failed login attempts."
    )


# --- live event stream, alert feed, counters ---------------------------------------------------
def test_an_event_and_an_alert_posted_through_the_api_appear_live(server, open_page, analyst_token):
    page = open_page()
    sign_in(page, server)
    events_before = counter(page, "events-total_24h")
    new_before = counter(page, "alerts-new")
    critical_before = counter(page, "alerts-critical")

    message = unique("Failed login for svc_backup")
    event_id = post_event(server, analyst_token, message, severity=4, computer="DC-01")
    row = page.locator(f'#event-stream tr[data-event-id="{event_id}"]')
    expect(row).to_contain_text(message)
    expect(row).to_contain_text("DC-01")
    expect(row.locator(".sev-badge")).to_have_text("high")
    expect(page.locator("#event-stream tr").first).to_have_attribute("data-event-id", str(event_id))
    expect(page.locator("#stat-events-total_24h")).to_have_text(f"{events_before + 1:,}")
    # The chart is drawn: bars in the current minute's or the past minutes' colour.
    bar_pixels = page.evaluate(
        """() => {
            const canvas = document.getElementById('rate-chart');
            const ctx = canvas.getContext('2d');
            const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                const rgb = [data[i], data[i + 1], data[i + 2]].join(',');
                if (rgb === '159,208,255' || rgb === '77,163,255') count += 1;
            }
            return count;
        }"""
    )
    assert bar_pixels > 0

    title = unique("Brute force against DC-01")
    alert_id = post_alert(server, analyst_token, title, severity=5, hostname="DC-01")
    first = page.locator("#alert-feed li").first
    expect(first).to_have_attribute("data-alert-id", str(alert_id))
    expect(first).to_contain_text(title)
    expect(first).to_have_class(re.compile(r"\bsev-critical\b"))
    expect(first.locator(".status-badge")).to_have_text("new")
    expect(page.locator("#stat-alerts-new")).to_have_text(f"{new_before + 1:,}")
    expect(page.locator("#stat-alerts-critical")).to_have_text(f"{critical_before + 1:,}")


def test_acknowledge_on_one_page_changes_the_row_in_place_on_another(
    server, open_page, analyst_token
):
    ids = [
        post_alert(server, analyst_token, unique("Scroll filler"), severity=2) for _ in range(25)
    ]
    target = ids[5]  # far enough down that the feed must scroll
    acting, watching = open_page(), open_page()
    sign_in(acting, server)
    sign_in(watching, server)

    row = alert_row(watching, target)
    row.click()
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    # Scroll the feed so the target row sits mid-view, and mark the DOM node to prove it is
    # updated in place rather than re-rendered.
    watching.evaluate(
        """(id) => {
            const feed = document.getElementById('alert-feed');
            const el = feed.querySelector(`li[data-alert-id="${id}"]`);
            feed.scrollTop = el.offsetTop - feed.offsetTop - 100;
            el.dataset.marker = 'same-node';
        }""",
        target,
    )
    scroll_before = watching.evaluate("document.getElementById('alert-feed').scrollTop")
    assert scroll_before > 0
    top_before = watching.evaluate(
        "(id) => document.querySelector(`li[data-alert-id='${id}']`).getBoundingClientRect().top",
        target,
    )

    alert_row(acting, target).get_by_role("button", name="Acknowledge").click()
    expect(alert_row(acting, target).locator(".status-badge")).to_have_text("acknowledged")

    expect(row.locator(".status-badge")).to_have_text("acknowledged", timeout=WAIT)
    expect(row).to_contain_text("→ analyst")
    expect(row).to_have_attribute("data-marker", "same-node")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    expect(row.get_by_role("button", name="Acknowledge")).to_be_hidden()
    assert watching.evaluate("document.getElementById('alert-feed').scrollTop") == scroll_before

    # A new alert arriving at the top does not move what the analyst is looking at.
    newest = post_alert(server, analyst_token, unique("Arrives while scrolled"), severity=3)
    expect(alert_row(watching, newest)).to_be_attached()
    top_after = watching.evaluate(
        "(id) => document.querySelector(`li[data-alert-id='${id}']`).getBoundingClientRect().top",
        target,
    )
    assert abs(top_after - top_before) < 1

    # Resolve from the watching page; the acting page follows.
    row.get_by_role("button", name="Resolve").click()
    expect(alert_row(acting, target).locator(".status-badge")).to_have_text("resolved")


def test_pause_holds_new_events_until_resumed(server, open_page, analyst_token):
    page = open_page()
    sign_in(page, server)
    pause = page.locator("#events-pause")
    pause.click()
    expect(pause).to_have_attribute("aria-pressed", "true")

    message = unique("Held while paused")
    event_id = post_event(server, analyst_token, message)
    expect(pause).to_have_text("Resume · 1 new")
    assert page.locator(f'#event-stream tr[data-event-id="{event_id}"]').count() == 0

    pause.click()
    expect(page.locator("#event-stream tr").first).to_have_attribute("data-event-id", str(event_id))
    expect(pause).to_have_text("Pause")


def test_statistics_and_ai_notifications_arrive_over_the_socket(server, open_page):
    page = open_page()
    sign_in(page, server)
    before = counter(page, "events-total_24h")
    # Three events written without any broadcast (counted in the statistics rollups as ingestion
    # does): only a `statistics` message can show them.
    server.shell(
        "from events.models import SecurityEvent\n"
        "from events.rollups import count_new_events\n"
        "count_new_events(SecurityEvent.objects.bulk_create([SecurityEvent(computer='WS-009',"
        " event_code=4624, severity=1, message='quiet') for _ in range(3)]))"
    )
    sent = server.shell(
        "from realtime.tasks import broadcast_dashboard_statistics\n"
        "print(broadcast_dashboard_statistics())"
    )
    assert sent.strip() == "True"  # the page's socket counts as a dashboard watcher
    expect(page.locator("#stat-events-total_24h")).to_have_text(f"{before + 3:,}")
    expect(page.locator("#stats-updated")).to_contain_text("Statistics as of")

    notification = {
        "event_id": 12345,
        "computer": "DC-01",
        "ai_score": 95,
        "ai_category": "intrusion",
        "ai_description": "Credential dumping on a domain controller",
        "message": "lsass access",
    }
    server.shell(
        "import json\nfrom realtime.manager import get_connection_manager\n"
        f"get_connection_manager().broadcast_notification(json.loads({json.dumps(notification)!r}),"
        " severity='critical')"
    )
    toast = page.locator(".toast-critical")
    expect(toast).to_contain_text("score 95")
    expect(toast).to_contain_text("DC-01")
    expect(toast).to_contain_text("Credential dumping on a domain controller")


def test_a_refused_action_shows_the_servers_reason_on_the_row(server, open_page, analyst_token):
    alert_id = post_alert(server, analyst_token, unique("Closed behind the page's back"))
    page = open_page()
    sign_in(page, server)
    row = alert_row(page, alert_id)
    expect(row.locator(".status-badge")).to_have_text("new")
    # Closed by a write that broadcasts nothing, so the page still offers Acknowledge.
    server.shell(
        "from alerts.models import Alert\n"
        f"Alert.objects.filter(pk={alert_id}).update(status='resolved', is_open=False)"
    )
    row.get_by_role("button", name="Acknowledge").click()
    expect(row.locator(".row-error")).to_contain_text("acknowledge failed:")
    expect(row.locator(".row-error")).to_contain_text("cannot change to 'acknowledged'")


def test_a_viewer_sees_the_feed_without_triage_buttons(server, open_page, analyst_token):
    alert_id = post_alert(server, analyst_token, unique("Visible to viewers"))
    page = open_page()
    sign_in(page, server, "viewer")
    row = alert_row(page, alert_id)
    expect(row).to_contain_text("Visible to viewers")
    expect(row.get_by_role("button", name="Acknowledge")).to_be_hidden()
    expect(row.get_by_role("button", name="Resolve")).to_be_hidden()


def test_a_revoked_session_returns_the_page_to_sign_in(server, open_page):
    page = open_page()
    sign_in(page, server)
    token = page.evaluate("sessionStorage.getItem('siem.token')")
    assert server.api("POST", "/auth/logout", token).status_code == 204
    expect(page.locator("#signin")).to_be_visible(timeout=WAIT)
    expect(page.locator("#signin-error")).to_contain_text("sign in again")
    assert page.evaluate("sessionStorage.getItem('siem.token')") is None


def test_sign_out_revokes_the_token(server, open_page):
    page = open_page()
    sign_in(page, server)
    token = page.evaluate("sessionStorage.getItem('siem.token')")
    page.click("#signout")
    expect(page.locator("#signin")).to_be_visible()
    assert server.api("GET", "/auth/me", token).status_code == 401


# --- the connection's rhythm ----------------------------------------------------------------
def test_the_page_pings_every_30_seconds_and_gets_a_pong(server, open_page):
    page = open_page()
    page.clock.install()  # the page's timers, driven by the test from here on
    sent, received = [], []

    def watch(ws):
        ws.on("framesent", lambda payload: sent.append(payload))
        ws.on("framereceived", lambda payload: received.append(payload))

    page.on("websocket", watch)
    sign_in(page, server)
    page.clock.pause_at(page.evaluate("Date.now()") + 1)

    # 1. Step a second at a time to the first ping (at most 30 s after the socket opened).
    for _ in range(31):
        if "ping" in sent:
            break
        page.clock.run_for(1000)
        page.wait_for_timeout(50)
    assert sent.count("ping") == 1
    wait_until(page, lambda: any(json.loads(frame).get("type") == "pong" for frame in received))

    # 2. It fired within the last second, so 29 s more stay quiet and one more brings the next.
    page.clock.run_for(29_000)
    page.wait_for_timeout(300)
    assert sent.count("ping") == 1
    page.clock.run_for(1000)
    wait_until(page, lambda: sent.count("ping") == 2)
    wait_until(page, lambda: sum('"pong"' in frame for frame in received) == 2)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def test_backoff_doubles_from_one_second_up_to_thirty_with_jitter(server, open_page):
    page = open_page()
    page.goto(f"{server.url}/")
    bounds = page.evaluate(
        """async () => {
            const { backoffDelay } = await import('/static/siem/js/live.js');
            return [0, 1, 2, 3, 4, 5, 9].map((attempt) => [
                backoffDelay(attempt, { random: () => 0 }),
                backoffDelay(attempt, { random: () => 0.999999 }),
            ]);
        }"""
    )
    assert bounds == [
        [500, 1000],
        [1000, 2000],
        [2000, 4000],
        [4000, 8000],
        [8000, 16000],
        [15000, 30000],
        [15000, 30000],
    ]


def wait_until(page: Page, condition, attempts: int = 100) -> None:
    """Poll `condition`; waiting through Playwright lets it deliver the page's events meanwhile."""
    for _ in range(attempts):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError("condition never became true")


# --- resuming after an outage ----------------------------------------------------------------
def test_a_gap_longer_than_the_history_makes_the_page_reload_its_panels(browser):
    """Server restarted and 400 events written while the page was offline; the history keeps
    about 100 (REALTIME_HISTORY_MAX=1 trims to one stream node), so `?since=` gets
    `resync_required` and the page reloads over REST."""
    short = LiveServer()
    short.env["REALTIME_HISTORY_MAX"] = "1"
    short.prepare()
    short.start()
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    try:
        page = context.new_page()
        received = []
        page.on(
            "websocket",
            lambda ws: ws.on("framereceived", lambda payload: received.append(payload)),
        )
        sign_in(page, short)
        context.set_offline(True)
        short.kill()
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        short.start()
        token = short.login("analyst")
        batch = [
            {"computer": "WS-002", "event_code": 4624, "severity": 1, "message": f"gap {i}",
             "source_type": "Windows Security"}
            for i in range(400)
        ]  # fmt: skip
        assert short.api("POST", "/events/bulk/", token, json=batch).status_code == 201
        context.set_offline(False)

        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=45_000)
        wait_until(page, lambda: any('"resync_required"' in frame for frame in received))
        expect(page.locator("#event-stream tr").first).to_contain_text("gap 399")
        expect(page.locator("#app")).to_have_attribute("data-snapshot", "loaded")
    finally:
        context.close()
        short.cleanup()


# --- resilience: keep this last, it restarts the module's server -----------------------------
def test_the_page_reconnects_after_the_server_is_killed_and_restarted(
    server, open_page, analyst_token
):
    page = open_page()
    sockets, snapshots = [], []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("request", lambda r: "/api/v1/events/?page_size=" in r.url and snapshots.append(r.url))
    sign_in(page, server)
    assert len(sockets) == 1 and len(snapshots) == 1

    page.context.set_offline(True)  # so the page cannot come back before the test says so
    server.kill()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#connection-text")).to_contain_text("Connection lost")

    server.start()
    missed = unique("Written during the outage")
    missed_id = post_event(server, analyst_token, missed)
    page.context.set_offline(False)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=45_000)
    expect(page.locator(f'#event-stream tr[data-event-id="{missed_id}"]')).to_contain_text(missed)
    # It came back through `?since=` replay, not through a reloaded snapshot.
    assert "since=" in sockets[-1] and "since=" not in sockets[0]
    assert len(snapshots) == 1

    after = unique("After the restart")
    after_id = post_event(server, analyst_token, after)
    expect(page.locator("#event-stream tr").first).to_have_attribute("data-event-id", str(after_id))
