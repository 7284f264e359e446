"""Regenerate docs/dashboard.png: a real server with demo data, photographed by headless Chromium.

    .venv/bin/python docs/make_dashboard_screenshot.py [--out docs/dashboard.png]

1. Start daphne on a fresh SQLite database and real Redis (tests/browser_support.py).
2. Backfill half an hour of quiet event history, so the events-per-minute chart has a past.
3. Sign in as `analyst` and keep the page open: everything after this arrives live.
4. Run `simulate_agents` (office noise, brute force, password spray, one dying agent) and, while
   it runs, the built-in AI analyzer, the agent watchdog and the statistics updater, as beat would.
5. Triage a little through the API (acknowledge, resolve, open an incident), then screenshot.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, LiveServer  # noqa: E402

BACKFILL = """
import math, random
from datetime import timedelta
from django.utils import timezone
from events.models import AnalysisStatus, SecurityEvent
random.seed(7)
now = timezone.now()
hosts = [f"WS-{n:03d}" for n in range(1, 13)] + ["DC-01", "FS-02"]
codes = [(4624, 1, "An account was successfully logged on"),
         (4634, 1, "An account was logged off"),
         (4672, 2, "Special privileges assigned to new logon"),
         (4625, 3, "An account failed to log on"),
         (4688, 1, "A new process has been created"),
         (4720, 4, "A user account was created"),
         (4732, 4, "A member was added to a security-enabled local group")]
weights = [40, 30, 10, 12, 30, 1, 1]
rows = []
for minute in range(30, 0, -1):
    burst = 180 if minute in (9, 10) else 0
    rate = int(150 + 60 * math.sin(minute / 4) + random.randint(0, 40) + burst)
    for _ in range(rate):
        at = now - timedelta(minutes=minute, seconds=random.randint(0, 59))
        code, sev, msg = random.choices(codes, weights)[0]
        rows.append(SecurityEvent(timestamp=at, received_at=at, computer=random.choice(hosts),
                                  event_code=code, severity=sev, message=msg,
                                  ai_status=AnalysisStatus.DONE, ai_score=random.randint(0, 20),
                                  ai_category="benign"))
SecurityEvent.objects.bulk_create(rows, batch_size=500)
print(len(rows))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    args = parser.parse_args()

    server = LiveServer()
    server.env.update(
        {"AGENT_ENROLLMENT_KEY": "demo-enrollment-key", "AGENT_OFFLINE_AFTER_SEC": "10"}
    )
    server.prepare()
    print("backfilled", server.shell(BACKFILL).strip(), "events")
    server.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(f"{server.url}/")
            page.fill("#signin-username", "analyst")
            page.fill("#signin-password", PASSWORD)
            page.click("#signin-submit")
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")

            simulation = subprocess.Popen(
                [sys.executable, "manage.py", "simulate_agents", "--url", server.url,
                 "--enrollment-key", "demo-enrollment-key", "--agents", "8", "--rate", "4",
                 "--duration", "60", "--heartbeat-interval", "3", "--seed", "7",
                 "--scenario", "office", "--scenario", "brute_force",
                 "--scenario", "password_spray", "--scenario", "dying_agent"],
                cwd=ROOT, env=server.env, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(35)  # the dying agent falls silent after 20 s; the others keep beating
            server.manage("analyze_events")
            offline = server.shell(
                "from agents.tasks import mark_silent_agents_offline\n"
                "print(mark_silent_agents_offline())"
            )
            print("agents marked offline:", offline.strip())

            token = server.login("analyst")
            for title, severity, category, host in [
                ("Security audit log cleared", 5, "defense_evasion", "DC-01"),
                ("LSASS memory read by a non-system account", 5, "credential_access", "WS-007"),
                ("New local administrator svc_update", 4, "persistence", "FS-02"),
            ]:
                server.api(
                    "POST",
                    "/alerts/",
                    token,
                    json={"title": title, "severity": severity, "category": category,
                          "hostname": host},
                )  # fmt: skip
            alerts = server.api("GET", "/alerts/?page_size=20", token).json()["results"]
            for alert in alerts[1:3]:
                server.api("POST", f"/alerts/{alert['alert_id']}/acknowledge/", token)
            if len(alerts) > 4:
                server.api("POST", f"/alerts/{alerts[4]['alert_id']}/resolve/", token)
            server.api(
                "POST",
                "/incidents/",
                token,
                json={
                    "title": "Password spray against domain accounts",
                    "severity": 4,
                    "alert_ids": [a["alert_id"] for a in alerts[:2]],
                },
            )
            sent = server.shell(
                "from realtime.tasks import broadcast_dashboard_statistics\n"
                "print(broadcast_dashboard_statistics())"
            )
            print("statistics sent:", sent.strip())
            time.sleep(2)  # let the last messages and the chart's animation frame land
            page.locator("#alert-feed li").nth(1).click()  # show a selected row
            # One toast shows the feature; a stack of them would hide the panels in a still.
            page.evaluate(
                "document.querySelectorAll('#toasts .toast').forEach((t, i) => i && t.remove())"
            )
            page.mouse.move(0, 0)
            page.screenshot(path=args.out)
            print("wrote", args.out)
            browser.close()
            simulation.wait(timeout=60)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
