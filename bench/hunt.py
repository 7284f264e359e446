"""Hunting benchmark: the hunting API on PostgreSQL with a million events.

1. Creates its own PostgreSQL database (`--db`, dropped at the end unless `--keep`), migrates it
   (which installs pg_trgm and the trigram index on `search_text`).
2. Loads `--events` events made from the real Windows logs of ../shared/data/windows (attack
   captures and benign office logs), each copy given one of 200 hosts, one of 2,000 users, a
   random source address and an event time spread over the last `--days` days. Rows go in by
   COPY (events.services.insert_rows) without the trigram and jsonb_path_ops indexes, which are
   built afterwards (build times printed), then VACUUM ANALYZE (as autovacuum would after a
   bulk load).
3. Times each scenario `--runs` times through the real API views in this process (Django's test
   client: URL routing, authentication, query parsing, the database, JSON rendering; no
   network): p50 and p95 in milliseconds. Each list request also counts its matches (DRF's
   page count), as the hunting page does.

    .venv/bin/python bench/hunt.py --events 1000000
    .venv/bin/python bench/hunt.py --events 200000 --runs 10 --keep   # reuse with --reuse

Bounded: it stops at `--events`; the database is dropped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "windows"
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to load")
    parser.add_argument(
        "--days", type=int, default=7, help="event times spread over this many days"
    )
    parser.add_argument("--runs", type=int, default=20, help="timed requests per scenario")
    parser.add_argument("--db", default="bench_hunt", help="PostgreSQL database to create")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--reuse", action="store_true", help="use the loaded database as it is")
    parser.add_argument("--batch", type=int, default=5000, help="rows per COPY")
    return parser.parse_args()


def pg(command: str, *args: str) -> None:
    subprocess.run(
        [command, "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def setup_django(db: str) -> None:
    os.environ.update(
        {
            "SIEM_IGNORE_DOTENV": "1",
            "DJANGO_SETTINGS_MODULE": "siem.settings",
            "DEBUG": "true",
            "DATABASE_URL": f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{db}",
            "ALLOWED_HOSTS": "testserver,127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def templates() -> list[dict]:
    records = []
    for path in sorted(DATA.glob("*/*.jsonl")):
        with path.open() as lines:
            records.extend(json.loads(line) for line in lines if line.strip())
    return records


def load(count: int, days: int, batch: int) -> None:
    from django.db import connection, transaction

    from events.ingest import prepare
    from events.services import _build, insert_rows

    rng = random.Random(42)
    pool = templates()
    hosts = [f"WS-{i:03d}.corp.local" for i in range(190)] + [
        f"DC-{i:02d}.corp.local" for i in range(10)
    ]
    users = [f"user{i:04d}" for i in range(2000)] + ["administrator", "svc_backup"]
    now = datetime.now(UTC)
    span = days * 86400
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS event_search_text_trgm_idx")
        cursor.execute("DROP INDEX IF EXISTS event_raw_path_ops_idx")
    started, done = time.monotonic(), 0
    while done < count:
        size = min(batch, count - done)
        records = []
        for _ in range(size):
            record = dict(rng.choice(pool))
            record["Computer"] = rng.choice(hosts)
            for key in ("TargetUserName", "SubjectUserName"):
                if key in record:
                    record[key] = rng.choice(users)
            if "IpAddress" in record:
                record["IpAddress"] = (
                    f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                )
            record["TimeCreated"] = (now - timedelta(seconds=rng.uniform(0, span))).isoformat()
            record.pop("EventRecordID", None)
            records.append(record)
        prepared = prepare(records)
        rows = [_build(item, agent=None, received_at=now) for item in prepared.items]
        with transaction.atomic():
            insert_rows(rows)
        done += size
        if done % 100_000 < batch:
            rate = done / (time.monotonic() - started)
            print(f"  loaded {done:,} events ({rate:,.0f}/s)", flush=True)
    print(f"loaded {count:,} events in {time.monotonic() - started:,.0f} s")
    started = time.monotonic()
    # The migrations' statements (the indexes were dropped for the load, as an operator would).
    trigram = importlib.import_module("events.migrations.0003_hunting_backfill_and_trigram_index")
    containment = importlib.import_module("events.migrations.0004_hunting_raw_containment_index")
    with connection.cursor() as cursor:
        cursor.execute(trigram.TRGM_INDEX)
        print(f"trigram index built in {time.monotonic() - started:,.0f} s")
        started = time.monotonic()
        cursor.execute(containment.RAW_INDEX)
        print(f"jsonb_path_ops index built in {time.monotonic() - started:,.0f} s")
    # As autovacuum would after a bulk insert: statistics and the visibility map (index-only scans).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE events_securityevent")
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('events_securityevent'))")
        print(f"table with indexes: {cursor.fetchone()[0]}")


def scenarios(now: datetime) -> list[tuple[str, str, dict]]:
    day = (now - timedelta(hours=24)).isoformat()
    week = (now - timedelta(days=7)).isoformat()
    lst, hist, facets = "/api/v1/events/", "/api/v1/events/histogram/", "/api/v1/events/facets/"
    return [
        ("raw field value, 7 d", lst, {"q": "TargetUserName:administrator", "since": week}),
        ("wildcard on CommandLine, 7 d", lst, {"q": "CommandLine:*powershell*", "since": week}),
        ("a host over 24 h", lst, {"q": "computer:dc-03.corp.local", "since": day}),
        ("a bare word, 7 d", lst, {"q": "mimikatz", "since": week}),
        ("OR + NOT, 24 h", lst, {"q": "(lsass OR sekurlsa) AND NOT computer:dc-*", "since": day}),
        ("all events, 24 h (no q)", lst, {"since": day}),
        ("histogram, all events, 24 h", hist, {"since": day}),
        ("histogram, raw field, 7 d", hist, {"q": "LogonType:3", "since": week}),
        ("facet computer, 24 h", facets, {"field": "computer", "since": day}),
        ("facet TargetUserName, 24 h", facets, {"field": "TargetUserName", "since": day}),
        (
            "facet computer, bare word, 7 d",
            facets,
            {"field": "computer", "q": "mimikatz", "since": week},
        ),
    ]


def measure(runs: int) -> None:
    from django.contrib.auth.models import Group, User
    from rest_framework.test import APIClient

    from accounts.services import issue_access_token

    user, _ = User.objects.get_or_create(username="bench-hunter")
    user.groups.add(Group.objects.get(name="analyst"))
    token, _session = issue_access_token(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    now = datetime.now(UTC)
    print(f"\n{'scenario':<34} {'matches':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for name, path, params in scenarios(now):
        times, matches = [], "-"
        for run in range(runs + 1):
            started = time.perf_counter()
            answer = client.get(f"{path}?{urlencode(params)}")
            elapsed = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200, answer.content[:300]
            if run:  # the first one warms caches
                times.append(elapsed)
            body = answer.json()
            if "count" in body:
                matches = f"{body['count']:,}"
            elif "buckets" in body:
                matches = f"{sum(b['count'] for b in body['buckets']):,}"
            elif "values" in body:
                matches = f"{sum(v['count'] for v in body['values']):,}"
        times.sort()
        p50 = statistics.median(times)
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"{name:<34} {matches:>9} {p50:>8.0f} {p95:>8.0f}", flush=True)


def main() -> None:
    args = parse_args()
    print(f"load average at start: {os.getloadavg()}  cpus: {os.cpu_count()}")
    if not args.reuse:
        pg("dropdb", "--if-exists", args.db)
        pg("createdb", args.db)
    try:
        setup_django(args.db)
        if not args.reuse:
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            load(args.events, args.days, args.batch)
        print(f"load average before measuring: {os.getloadavg()}")
        measure(args.runs)
        print(f"load average at the end: {os.getloadavg()}")
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            pg("dropdb", "--if-exists", args.db)
            print(f"dropped database {args.db}")


if __name__ == "__main__":
    main()
