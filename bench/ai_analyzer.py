"""AI analyzer benchmark: events per second through the analyzer queue, on one core.

The events are the real Windows logs of ../shared/data/windows (attack captures and benign
office logs, 3,255 records) repeated to `--events`, stored with bulk_create (ingestion is not
measured here). Each scenario drains the queue with `events.analysis.run_batch` — claim (one
conditional UPDATE per event), analyze, store (one UPDATE per event, notifications and AI
alerts above the thresholds, broadcast to Redis after commit):

- `builtin`:  the offline analyzer (rules + the failed-logon burst queries).
- `llm`:      the OpenAI-compatible provider through the real `openai` client against a loopback
              chat-completions server that answers instantly: what our side costs per batch
              (prompt building, HTTP, parsing, storing) without any model time.
- `llm-mask`: the same with AI_MASK_SENSITIVE=true.

It also reports the request size per event (bytes of the JSON prompt), which is what a paid
provider bills (roughly 1 token per 4 bytes of English/JSON).

It uses its own SQLite database file (removed afterwards), Redis database 5 and its own key prefix.

    .venv/bin/python bench/ai_analyzer.py --events 5000 --batch 10
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
FILES = sorted((DATA / "windows").glob("*/*.jsonl"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="events per scenario")
    parser.add_argument("--batch", type=int, default=10, help="AI_BATCH_SIZE")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=["builtin", "llm", "llm-mask"],
        help="run only these (repeatable); default: all",
    )
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    return parser.parse_args()


def setup_django(database: Path) -> None:
    os.environ.update(
        {
            "SIEM_IGNORE_DOTENV": "1",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": f"sqlite:///{database}",
            "REDIS_URL": "redis://127.0.0.1:6379/5",
            "REDIS_KEY_PREFIX": f"bench-ai-{secrets.token_hex(4)}",
            "DJANGO_SETTINGS_MODULE": "siem.settings",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def store(count: int) -> None:
    from events.models import SecurityEvent
    from events.normalize import normalize_record

    base = [json.loads(line) for path in FILES for line in path.open() if line.strip()]
    rows = []
    for i in range(count):
        item = normalize_record(dict(base[i % len(base)]))
        item.pop("agent_record_id", None)
        rows.append(SecurityEvent(**item))
    SecurityEvent.objects.all().delete()
    SecurityEvent.objects.bulk_create(rows, batch_size=1000)


def drain(provider, batch: int) -> dict:
    from events.analysis import run_batch
    from events.models import AnalysisStatus, SecurityEvent

    total = SecurityEvent.objects.count()
    started = time.perf_counter()
    batches = 0
    while run_batch(provider, limit=batch, ignore_backoff=True).claimed:
        batches += 1
    elapsed = time.perf_counter() - started
    done = SecurityEvent.objects.filter(ai_status=AnalysisStatus.DONE).count()
    if done != total:
        left = SecurityEvent.objects.exclude(ai_status=AnalysisStatus.DONE)
        sample = list(left.values_list("ai_status", "ai_attempts", "ai_error", "event_code")[:5])
        raise SystemExit(f"{total - done} not analyzed, e.g. {sample}")
    return {
        "events": total,
        "batches": batches,
        "seconds": round(elapsed, 2),
        "events_per_s": round(total / elapsed),
        "ms_per_batch": round(1000 * elapsed / batches, 2),
    }


def main() -> None:
    args = parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    scenarios = args.scenario or ["builtin", "llm", "llm-mask"]
    with tempfile.TemporaryDirectory(prefix="bench-ai-") as tmp:
        setup_django(Path(tmp) / "bench.sqlite3")
        from django.conf import settings

        from events.ai import get_provider
        from tests.ai_helpers import FakeLLM, verdicts

        fake = FakeLLM().start()
        fake.behaviour = verdicts(lambda e: (e["event_id"] * 7) % 101, "bench")
        settings.AI_BASE_URL = fake.base_url
        settings.AI_MODEL = "bench"
        results = {}
        try:
            for scenario in scenarios:
                store(args.events)
                settings.AI_MASK_SENSITIVE = scenario == "llm-mask"
                fake.requests.clear()
                provider = get_provider("builtin" if scenario == "builtin" else "openai")
                result = drain(provider, args.batch)
                if fake.requests:
                    sizes = [
                        len(next(m for m in r.body["messages"] if m["role"] == "user")["content"])
                        for r in fake.requests
                    ]
                    result["prompt_bytes_per_event"] = round(sum(sizes) / args.events)
                results[scenario] = result
                print(scenario, json.dumps(result), flush=True)
        finally:
            fake.stop()


if __name__ == "__main__":
    main()
