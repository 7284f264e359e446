"""Regenerate docs/hunt.png: the hunting page on a real server with real Windows logs.

    .venv/bin/python docs/make_hunt_screenshot.py [--out docs/hunt.png]

1. Start daphne on a fresh SQLite database and real Redis (tests/browser_support.py).
2. Store the attack captures of ../shared/data/windows/attack-samples (through the ingestion
   service, so detection runs as usual), their event times spread over the last 24 hours.
3. Sign in as `analyst` at 1366×768, search, pick a top value, open one raw record, screenshot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, LiveServer  # noqa: E402

LOAD = """
import json, random
from datetime import timedelta
from pathlib import Path
from django.utils import timezone
from events.ingest import prepare
from events.services import create_events
random.seed(3)
now = timezone.now()
records = []
for path in sorted(Path("../shared/data/windows/attack-samples").glob("*.jsonl")):
    records += [json.loads(line) for line in path.open() if line.strip()]
for record in records:
    hours = random.betavariate(2, 1.2) * 24
    record["TimeCreated"] = (now - timedelta(hours=24 - hours + 0.01)).isoformat()
    record.pop("EventRecordID", None)
prepared = prepare(records)
for start in range(0, len(prepared.items), 500):
    create_events(prepared.items[start:start + 500])
print(len(prepared.items))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "hunt.png"))
    args = parser.parse_args()

    server = LiveServer()
    server.prepare()
    print("stored", server.shell(LOAD).strip(), "events")
    server.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"{server.url}/events/")
            page.fill("#signin-username", "analyst")
            page.fill("#signin-password", PASSWORD)
            page.click("#signin-submit")
            expect(page.locator("#app")).to_have_attribute("data-search", "done", timeout=30_000)
            query = urlencode({"q": "event_code:(4624 OR 4625 OR 4688) AND NOT LogonType:5"})
            page.goto(f"{server.url}/events/?{query}&range=24h")
            expect(page.locator("#app")).to_have_attribute("data-search", "done", timeout=30_000)
            page.fill("#facet-field", "TargetUserName")
            page.dispatch_event("#facet-field", "change")
            expect(page.locator("#facets li").first).to_be_visible(timeout=30_000)
            # The message cell: host, user and IP cells are links to other searches.
            page.locator("#results tr.event-row").nth(1).locator("td.msg").click()
            expect(page.locator("#results tr.event-detail:visible")).to_have_count(1)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.cleanup()
    print("wrote", args.out)


if __name__ == "__main__":
    main()
