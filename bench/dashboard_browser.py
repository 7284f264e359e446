"""How the dashboard page copes with bursts: headless Chromium against a real daphne and Redis.

    .venv/bin/python bench/dashboard_browser.py [--bursts 10] [--burst-size 1000] [--history 5000]

1. Start daphne (file SQLite, real Redis) with `--history` events of the last 30 minutes.
2. Time page load + sign-in until the socket is `live` and until the counters show the API's
   numbers (the chart's 30 per-minute counts load alongside).
3. `--bursts` times: POST /api/v1/events/bulk/ with `--burst-size` events (one request, one
   broadcast message per event) and time, inside the page, from the request to the insert that
   put the burst's last event on top; read the page's JS heap (CDP Runtime.getHeapUsage) after
   each burst.
4. Print a table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, LiveServer  # noqa: E402

HISTORY = """
import random
from datetime import timedelta
from django.utils import timezone
from events.models import AnalysisStatus, SecurityEvent
now = timezone.now()
SecurityEvent.objects.bulk_create([
    SecurityEvent(timestamp=now - timedelta(seconds=random.randint(60, 1800)), computer="WS-001",
                  event_code=4624, severity=1, message="history", ai_status=AnalysisStatus.DONE)
    for _ in range({n})], batch_size=1000)
"""

COUNT_ROWS = """() => {
    window.__last = 0;
    window.__first = 0;
    new MutationObserver(() => {
        window.__last = performance.now();
        if (!window.__first) window.__first = window.__last;
    }).observe(document.getElementById('event-stream'), { childList: true });
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--burst-size", type=int, default=1000)
    parser.add_argument("--history", type=int, default=5000)
    args = parser.parse_args()

    server = LiveServer()
    server.prepare()
    if args.history:
        server.shell(HISTORY.format(n=args.history))
    server.start()
    token = server.login("analyst")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            cdp = page.context.new_cdp_session(page)

            started = time.perf_counter()
            page.goto(f"{server.url}/")
            page.fill("#signin-username", "analyst")
            page.fill("#signin-password", PASSWORD)
            page.click("#signin-submit")
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
            to_live = time.perf_counter() - started
            expect(page.locator("#stat-events-total_24h")).to_have_text(f"{args.history:,}")
            to_counters = time.perf_counter() - started
            print(
                f"page load + sign-in → socket live: {to_live * 1000:.0f} ms; "
                f"→ counters from the API: {to_counters * 1000:.0f} ms"
            )

            page.evaluate(COUNT_ROWS)
            cdp.send("HeapProfiler.collectGarbage")
            heap_start = cdp.send("Runtime.getHeapUsage")["usedSize"]
            durations, heaps, post_ms, first_ms = [], [], [], []
            for burst in range(args.bursts):
                batch = [
                    {
                        "computer": f"WS-{i % 50:03d}",
                        "event_code": 4625,
                        "severity": 1 + i % 5,
                        "message": f"burst {burst} event {i}",
                        "source_type": "Windows Security",
                    }
                    for i in range(args.burst_size)
                ]
                t0 = page.evaluate("window.__first = 0; performance.now()")
                posted = time.perf_counter()
                answer = server.api("POST", "/events/bulk/", token, json=batch, timeout=120)
                answer.raise_for_status()
                post_ms.append((time.perf_counter() - posted) * 1000)
                # Messages arrive in order: the burst's last event on top means all were handled.
                page.wait_for_function(
                    "(text) => document.querySelector('#event-stream .msg')?.textContent === text",
                    arg=f"burst {burst} event {args.burst_size - 1}",
                    timeout=120_000,
                )
                durations.append(page.evaluate("window.__last") - t0)
                first_ms.append(page.evaluate("window.__first") - t0)
                cdp.send("HeapProfiler.collectGarbage")
                heaps.append(cdp.send("Runtime.getHeapUsage")["usedSize"])
            rows = page.locator("#event-stream tr").count()
            browser.close()
    finally:
        server.cleanup()

    print(f"bursts: {args.bursts} × {args.burst_size} events (one bulk POST, a message per event)")
    print(
        f"request → last row on the page: median {statistics.median(durations):.0f} ms, "
        f"max {max(durations):.0f} ms "
        f"(≈ {args.burst_size / (statistics.median(durations) / 1000):.0f} events/s end to end)"
    )
    print(
        f"of which the bulk POST's answer: median {statistics.median(post_ms):.0f} ms; "
        f"first row on the page: median {statistics.median(first_ms):.0f} ms"
    )
    print(
        f"JS heap after GC: start {heap_start / 1e6:.1f} MB, after burst 1 {heaps[0] / 1e6:.1f} MB,"
        f" after burst {args.bursts} {heaps[-1] / 1e6:.1f} MB; rows kept in the table: {rows}"
    )


if __name__ == "__main__":
    main()
