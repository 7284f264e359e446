"""Regenerate docs/alert.png and docs/incident.png: a real server with alerts raised from the
shared attack samples, photographed by headless Chromium at 1366 px wide.

    .venv/bin/python docs/make_case_screenshots.py [--out-dir docs]

1. Start daphne on a fresh SQLite database and real Redis (tests/browser_support.py), after
   importing ../shared/data/windows/attack-samples/{credential-access,lateral-movement}.jsonl
   through the real ingest and detection path.
2. Pick the detection alert with the most occurrences that names a user; comment on it, open an
   incident with it and the alerts related to it, add tasks and an observable (REST, as analyst).
3. Sign in as `analyst`, open the alert page and the incident page, and photograph each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, LiveServer  # noqa: E402

SAMPLES = ROOT.parent / "shared/data/windows/attack-samples"


def pick_alert(server: LiveServer, token: str) -> dict:
    rows = server.api("GET", "/alerts/?page_size=500", token).json()["results"]
    best = None
    for row in rows:
        if not row["rule_id"] or row["occurrence_count"] < 2:
            continue
        detail = server.api("GET", f"/alerts/{row['alert_id']}/", token).json()
        if detail["entities"]["users"] and (
            best is None or detail["occurrence_count"] > best["occurrence_count"]
        ):
            best = detail
    return best


def stage(server: LiveServer, token: str, alert: dict) -> int:
    """Work the case a little through the API; returns the incident id."""
    alert_id = alert["alert_id"]

    def post(path: str, body: dict) -> dict:
        answer = server.api("POST", path, token, json=body)
        answer.raise_for_status()
        return answer.json()

    post(f"/alerts/{alert_id}/acknowledge/", {})
    post(f"/alerts/{alert_id}/comments/", {"text": "Admin shares from one workstation: checking."})
    related = server.api("GET", f"/alerts/{alert_id}/related/", token).json()
    incident = post(
        "/incidents/",
        {
            "title": f"{alert['title']} on {alert['hostname']}",
            "severity": alert["severity"],
            "alert_ids": [alert_id] + [r["alert_id"] for r in related[:3]],
        },
    )
    incident_id = incident["incident_id"]
    post(
        f"/incidents/{incident_id}/tasks/", {"title": "Isolate the host", "assigned_to": "analyst"}
    )
    task = post(f"/incidents/{incident_id}/tasks/", {"title": "Collect memory image"})
    server.api("PATCH", f"/tasks/{task['task_id']}/", token, json={"status": "done"})
    post(f"/incidents/{incident_id}/tasks/", {"title": "Reset the account's password"})
    post(f"/incidents/{incident_id}/observables/", {"kind": "domain", "value": "evil.example"})
    post(f"/incidents/{incident_id}/comments/", {"text": "Host isolated at 10:42, memory taken."})
    return incident_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(ROOT / "docs"))
    args = parser.parse_args()
    out = Path(args.out_dir)

    server = LiveServer()
    server.prepare()
    for name in ("credential-access", "lateral-movement"):
        server.manage("import_events", str(SAMPLES / f"{name}.jsonl"), timeout=900)
    server.start()
    try:
        token = server.login("analyst")
        alert = pick_alert(server, token)
        incident_id = stage(server, token, alert)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(120_000)  # a shared, loaded machine
            page.goto(f"{server.url}/alerts/{alert['alert_id']}/")
            page.fill("#signin-username", "analyst")
            page.fill("#signin-password", PASSWORD)
            page.click("#signin-submit")
            expect(page.locator("#app")).to_have_attribute("data-loaded", "loaded", timeout=120_000)
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
            page.locator("#event-rows tr.event-row button").first.click()
            page.wait_for_timeout(500)  # the chart draws on the next frame
            page.screenshot(path=str(out / "alert.png"), full_page=True)
            page.goto(f"{server.url}/incidents/{incident_id}/")
            expect(page.locator("#app")).to_have_attribute("data-loaded", "loaded", timeout=120_000)
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
            page.screenshot(path=str(out / "incident.png"), full_page=True)
            browser.close()
    finally:
        server.cleanup()
    print(f"wrote {out / 'alert.png'} and {out / 'incident.png'}")


if __name__ == "__main__":
    main()
