"""Detection benchmark: events per second through the detection stage, on one core.

Every loadable rule of the complete SigmaHQ Windows ruleset (../shared/data/sigma-full, 2,399
of 2,407; `--sigma-dir` to change) and every built-in rule are loaded. The events are the real
Windows logs of ../shared/data/windows (benign office logs, attack captures and the whole
EVTX-ATTACK-SAMPLES collection, 10,703 records: the realistic mix) repeated to `--events`, each
repetition shifted one day later in event time; `proc` scenarios use only the process-creation
records among them (Sysmon 1 and Security 4688).

Scenarios (all by default, or pick with --scenario):

- `match`:   Engine.evaluate() on micro-batches of `--batch` unsaved events: field views, built-in
             and Sigma matching, Redis window updates (one pipeline per batch). No alert writes.
- `full`:    Engine.process() on stored events: the above plus the alert writes (raise or repeat,
             one per rule and key per batch) in the database, as the on-commit hook runs it.
- `burst`:   a brute-force burst: every event is a 4625 for the same account and source, so
             every event is a Redis window update and every batch repeats the open alert.
- `inline`:  the cost of running detection inline in the on-commit hook: create_events() on the
             real mix with detection off, then on, in micro-batches (storing, broadcasting and
             detecting; the difference is what ingestion pays for detection).
- `proc`:    `match` on process-creation events only (the biggest bucket: 1,183 rules).
- `sqlite`, `sqlite-proc`: the baseline, Zircolite's approach, on the same events and rules:
             every rule converted by pySigma's SQLite backend with the Windows/Sysmon logsource
             pipeline (`alerts.detection.logsource.reference_pipeline`, conversion not timed),
             then per micro-batch: load it into an in-memory table, run every query. Built-in
             rules and Redis are not included, so it is an upper bound of its speed.

The process pins itself to one CPU (`--cpu`); Redis and the database are separate processes.
It uses its own SQLite database file (removed afterwards) and its own Redis key prefix.

    .venv/bin/python bench/detection.py --events 50000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
FILES = sorted((DATA / "windows").glob("*/*.jsonl"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per scenario")
    parser.add_argument("--batch", type=int, default=500, help="micro-batch size")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=["match", "proc", "full", "burst", "inline", "sqlite", "sqlite-proc"],
        help="run only these (repeatable); default: all",
    )
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    parser.add_argument("--sigma-dir", default=str(DATA / "sigma-full" / "rules" / "windows"))
    return parser.parse_args()


def setup_django(database: Path, sigma_dir: str) -> None:
    os.environ.update(
        {
            "SIEM_IGNORE_DOTENV": "1",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": f"sqlite:///{database}",
            "SIGMA_RULES_DIR": sigma_dir,
            "REDIS_KEY_PREFIX": f"bench-detect-{secrets.token_hex(4)}",
            "DJANGO_SETTINGS_MODULE": "siem.settings",
        }
    )
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def is_process_creation(record: dict) -> bool:
    channel = str(record.get("Channel") or "")
    return (channel == "Microsoft-Windows-Sysmon/Operational" and record["EventID"] == 1) or (
        channel == "Security" and record["EventID"] == 4688
    )


def records(count: int, only=None) -> list[dict]:
    """The real records, repeated; each repetition one day later (new windows, new alerts)."""
    base = [json.loads(line) for path in FILES for line in path.open() if line.strip()]
    base = [record for record in base if only is None or only(record)]
    from events.normalize import normalize_record

    items = []
    for i in range(count):
        record = dict(base[i % len(base)])
        item = normalize_record(record)
        if item.get("timestamp"):
            item["timestamp"] += timedelta(days=i // len(base))
        items.append(item)
    return items


def burst(count: int) -> list[dict]:
    from datetime import UTC, datetime

    from events.normalize import normalize_record

    start = datetime(2019, 3, 18, tzinfo=UTC)
    return [
        normalize_record(
            {
                "EventID": 4625,
                "Computer": "DC-01",
                "Channel": "Security",
                "TimeCreated": (start + timedelta(milliseconds=20 * i)).isoformat(),
                "TargetUserName": "Administrator",
                "TargetDomainName": "EXAMPLE",
                "IpAddress": "203.0.113.7",
                "LogonType": 3,
                "Status": "0xc000006d",
            }
        )
        for i in range(count)
    ]


def timed(label: str, count: int, run) -> dict:
    """Wall time, and this process's CPU time: on a shared machine the CPU-time rate is what one
    dedicated core would do (Redis's own CPU is not in it; SQLite runs in this process)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    extra = run()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    rate, cpu_rate = count / elapsed, count / cpu
    print(
        f"{label:8} {count:8} events  {elapsed:7.2f} s wall {rate:9,.0f}/s  "
        f"{cpu:7.2f} s CPU {cpu_rate:9,.0f}/s  {extra or ''}"
    )
    return {
        "scenario": label,
        "events": count,
        "seconds": elapsed,
        "rate": rate,
        "cpu_seconds": cpu,
        "cpu_rate": cpu_rate,
    }


def run_match(engine, events, batch) -> str:
    fired = 0
    for start in range(0, len(events), batch):
        _, counts = engine.evaluate(events[start : start + batch])
        fired += sum(counts.values())
    return f"({fired} rule matches)"


def store(items, batch) -> list:
    from django.conf import settings

    from events.models import SecurityEvent
    from events.services import create_events

    settings.DETECTION_ENABLED = False  # store first; the scenario times detection alone
    last = SecurityEvent.objects.order_by("-event_id").values_list("event_id", flat=True).first()
    for start in range(0, len(items), batch):
        create_events(items[start : start + batch])
    settings.DETECTION_ENABLED = True
    return list(SecurityEvent.objects.filter(event_id__gt=last or 0).order_by("event_id"))


def run_full(engine, events, batch) -> str:
    from alerts.models import Alert

    for start in range(0, len(events), batch):
        engine.process(events[start : start + batch])
    return f"({Alert.objects.count()} alerts in the database)"


def run_ingest(items, batch) -> str:
    from events.services import create_events

    for start in range(0, len(items), batch):
        create_events(items[start : start + batch])
    return ""


def sqlite_queries(sigma_dir: str) -> list[str]:
    """Every single-event rule converted with the logsource pipeline (not timed)."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection
    from sigma.rule import SigmaRule

    from alerts.detection.logsource import reference_pipeline

    paths = sorted(str(p) for p in Path(sigma_dir).rglob("*.yml"))
    collection = SigmaCollection.load_ruleset(paths, collect_errors=True)
    backend = sqliteBackend(processing_pipeline=reference_pipeline())
    queries = []
    for rule in collection.rules:
        if isinstance(rule, SigmaRule):
            try:
                queries.extend(backend.convert_rule(rule))
            except Exception:  # noqa: BLE001, S112 - the refused rule is skipped, as the engine does
                continue
    return queries


def sqlite_columns(items, queries) -> list[str]:
    """Columns of the batch table: every field of the events and every field a query reads."""
    from events.normalize import event_fields

    columns = {key.lower() for item in items for key in event_fields(item["raw"])}
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, lambda p, v: False)
    db.execute("CREATE TABLE logs (" + ", ".join(f'"{c}"' for c in sorted(columns)) + ")")
    for query in queries:
        while True:
            try:
                db.execute(query).fetchall()
                break
            except sqlite3.OperationalError as exc:
                missing = re.fullmatch(r"no such column: (\w+)", str(exc))
                if not missing:
                    raise
                columns.add(missing.group(1).lower())
                db.execute(f'ALTER TABLE logs ADD COLUMN "{missing.group(1).lower()}"')
    db.close()
    return sorted(columns)


def run_sqlite(items, batch, queries, columns) -> str:
    from events.normalize import event_fields

    matched = 0
    for start in range(0, len(items), batch):
        db = sqlite3.connect(":memory:")
        db.create_function("regexp", 2, lambda p, v: v is not None and bool(re.search(p, str(v))))
        db.execute("CREATE TABLE logs (" + ", ".join(f'"{c}"' for c in columns) + ")")
        rows = []
        for item in items[start : start + batch]:
            fields = {k.lower(): v for k, v in event_fields(item["raw"]).items()}
            rows.append([_cell(fields.get(c)) for c in columns])
        marks = ", ".join("?" for _ in columns)
        db.executemany(f"INSERT INTO logs VALUES ({marks})", rows)  # noqa: S608 - fixed columns
        for query in queries:
            matched += len(db.execute(query).fetchall())
        db.close()
    return f"({len(queries)} queries per batch, {matched} rows matched)"


def _cell(value):
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return str(value)  # beyond SQLite INTEGER (a 64-bit unsigned id)
    return json.dumps(value) if isinstance(value, dict | list) else value


def redis_rtt_ms(client) -> float:
    """Window updates and broadcasts are Redis round trips: report what one costs right now."""
    samples = []
    for _ in range(50):
        started = time.perf_counter()
        client.ping()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    args = parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    scenarios = args.scenario or [
        "match",
        "proc",
        "full",
        "burst",
        "inline",
        "sqlite",
        "sqlite-proc",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as tmp:
        setup_django(Path(tmp) / "bench.sqlite3", args.sigma_dir)
        from django.conf import settings

        from alerts.detection.engine import get_engine
        from alerts.detection.windows import default_client

        engine = get_engine()
        print(f"Redis round trip (median of 50 PINGs): {redis_rtt_ms(default_client()):.2f} ms")
        print(
            f"rules: {len(engine.sigma.rules)} Sigma + {len(engine.sigma.correlations)} Sigma "
            f"correlation + {len(engine.builtin)} built-in; batch {args.batch}; "
            f"CPU {'any' if args.cpu < 0 else args.cpu}"
        )
        results = []
        try:
            if "match" in scenarios:
                from alerts.detection.replay import unsaved_events

                events = unsaved_events(records(args.events))
                results.append(
                    timed("match", len(events), lambda: run_match(engine, events, args.batch))
                )
            if "proc" in scenarios:
                from alerts.detection.replay import unsaved_events

                events = unsaved_events(records(args.events, is_process_creation))
                results.append(
                    timed("proc", len(events), lambda: run_match(engine, events, args.batch))
                )
            if "full" in scenarios:
                events = store(records(args.events), args.batch)
                results.append(
                    timed("full", len(events), lambda: run_full(engine, events, args.batch))
                )
            if "burst" in scenarios:
                events = store(burst(args.events), args.batch)
                results.append(
                    timed("burst", len(events), lambda: run_full(engine, events, args.batch))
                )
            if "inline" in scenarios:
                items = records(args.events)
                for enabled in (False, True):
                    settings.DETECTION_ENABLED = enabled
                    label = "ingest+d" if enabled else "ingest"
                    results.append(timed(label, len(items), lambda: run_ingest(items, args.batch)))
            if "sqlite" in scenarios or "sqlite-proc" in scenarios:
                queries = sqlite_queries(args.sigma_dir)
            for label, only in (("sqlite", None), ("sqlite-proc", is_process_creation)):
                if label in scenarios:
                    items = records(args.events, only)
                    columns = sqlite_columns(items, queries)
                    results.append(
                        timed(
                            label,
                            len(items),
                            lambda: run_sqlite(items, args.batch, queries, columns),  # noqa: B023
                        )
                    )
        finally:
            client = default_client()
            keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        print(json.dumps(results))


if __name__ == "__main__":
    main()
