"""Scale benchmark: statistics, lists, search and retention at millions of events (PostgreSQL).

1. (re)creates the PostgreSQL database `bench_scale`, migrates it;
2. generates `--events` events (default 10 M) spread over `--days` days in event-time order
   (1 % delivered late, hours behind), inside PostgreSQL (`INSERT … SELECT generate_series`,
   secondary indexes dropped during the load and rebuilt after, as a bulk load does), plus
   alerts (open and closed, each linked to 3 events), incidents and the per-minute rollups;
3. measures, in-process with Django's test client (full view and rendering, no network),
   `--rounds` times each after one warm-up: the dashboard statistics, the admin events
   changelist and its search, the API events list unfiltered, with each filter, page 2 and a
   deep page by cursor; prints median and p95;
4. runs the retention purge of the oldest day while a separate process ingests batches of 500
   events through `events.services.create_events` (as the API does, detection included), and
   prints the ingestion rate before, during and after the purge, and the longest pause between
   two ingested batches in each phase. The events table is partitioned by day (migration
   0007): the purge detaches and drops the oldest day's partition (`drop_expired_partitions`,
   what the daily retention does), then the batched pass over the DEFAULT partition; it prints
   how long the exclusive lock of the DETACH was held;
5. drops the database (unless `--keep-db`).

    .venv/bin/python bench/scale.py --events 2000000
    .venv/bin/python bench/scale.py --keep-db --skip-generate   # measure again, same data

Needs PostgreSQL and Redis on localhost. Bounded: the load goes by chunks of 500,000 rows with
progress lines; every measured request is timed individually; the ingest phases last
`--phase-seconds` each.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
REDIS_PREFIX = "siem-bench-scale"
EVENTS = "events_securityevent"
CHUNK = 500_000
CODES = "(ARRAY[4624,4624,4624,4634,4634,4672,4688,4688,4688,4625,4769,5140])"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def bench_env(args) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "siem.settings",
            "SIEM_IGNORE_DOTENV": "1",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": f"{args.pg_url.rstrip('/')}/{args.database}",
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": REDIS_PREFIX,
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def admin_url(args) -> str:
    return f"{args.pg_url.rstrip('/')}/postgres"


def db_url(args) -> str:
    return f"{args.pg_url.rstrip('/')}/{args.database}"


# --- 1 and 2: database and data --------------------------------------------------------------
def prepare_database(args, env: dict[str, str]) -> None:
    with psycopg.connect(admin_url(args), autocommit=True) as conn:
        if not args.keep_db:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [args.database]
        ).fetchone():
            conn.execute(f'CREATE DATABASE "{args.database}"')
    log("migrating")
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )


def generate(args) -> None:
    """Events in event-time order over `--days` days ending now, indexes rebuilt after."""
    n, days = args.events, args.days
    with psycopg.connect(db_url(args), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET TimeZone = 'UTC'")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT LIKE '%%pkey'",
            [EVENTS],
        ).fetchall()
        for name, _definition in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        # One partition per day of the data, as beat would have created them (partitioned
        # table, migration 0007; a plain table gets none).
        if (
            conn.execute(
                "SELECT relkind FROM pg_class WHERE oid = %s::regclass", [EVENTS]
            ).fetchone()[0]
            == "p"
        ):
            conn.execute(
                PARTITIONS_SQL.replace(":days", str(int(days)))
            )  # a DO block: no parameters
        started = time.monotonic()
        for first in range(1, n + 1, CHUNK):
            last = min(first + CHUNK - 1, n)
            conn.execute(EVENTS_SQL, {"first": first, "last": last, "n": n, "days": days})
            rate = last / (time.monotonic() - started)
            log(f"events {last:,} / {n:,} ({rate:,.0f}/s)")
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{EVENTS}', 'event_id'), %s)", [n])
        for name, definition in indexes:
            step = time.monotonic()
            # A partitioned table's index is listed as `ON ONLY` the parent, which would build
            # nothing below it: built on the parent, it is built on every partition.
            conn.execute(definition.replace(" ON ONLY ", " ON ", 1))
            log(f"index {name} rebuilt in {time.monotonic() - step:.0f} s")
        params = {"alerts": args.alerts, "incidents": args.alerts // 100, "n": n}
        for statement in [*ALERTS_SQL, *INCIDENTS_SQL, ROLLUPS_SQL]:
            conn.execute(statement, params)
        log("alerts, incidents and rollups written; vacuum and analyze")
        # As autovacuum leaves a table: statistics and visibility maps (index-only scans).
        conn.execute("VACUUM (ANALYZE)")
        size = conn.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) "
            "FROM pg_partition_tree(%s::regclass)",  # a partitioned table has no size of its own
            [EVENTS],
        ).fetchone()[0]
        log(f"generated {n:,} events in {time.monotonic() - started:.0f} s ({size} with indexes)")


# The day partitions the generated days need (received_at spans `days` days ending now). Sent
# without parameters (a DO block takes none): `:days` is replaced by an integer.
PARTITIONS_SQL = f"""
DO $$
DECLARE day date;
BEGIN
    FOR day IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date - :days - 1,
                                      (now() AT TIME ZONE 'UTC')::date, interval '1 day')::date
    LOOP
        IF to_regclass('{EVENTS}_p' || to_char(day, 'YYYYMMDD')) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF {EVENTS} FOR VALUES FROM (%L) TO (%L)',
                '{EVENTS}_p' || to_char(day, 'YYYYMMDD'), day::timestamp AT TIME ZONE 'UTC',
                (day + 1)::timestamp AT TIME ZONE 'UTC');
        END IF;
    END LOOP;
END $$
"""  # noqa: S608 - constants only

# Event time advances with the id (as received); 1 % arrive up to 6 h late.
EVENTS_SQL = f"""
INSERT INTO {EVENTS} (event_id, "timestamp", received_at, computer, agent_id, agent_record_id,
    event_code, severity, message, source_type, user_name, source_ip, raw, ai_status, ai_score,
    ai_category, ai_description, ai_attempts, ai_claimed_at, ai_analyzed_at, ai_provider, ai_error,
    search_text)
SELECT g, ts - CASE WHEN r5 < 0.01 THEN r5 * 100 * interval '6 hours' ELSE interval '0' END,
    ts + interval '2 seconds', host, NULL, NULL, code,
    CASE WHEN r2 < 0.40 THEN 1 WHEN r2 < 0.65 THEN 2 WHEN r2 < 0.85 THEN 3
         WHEN r2 < 0.95 THEN 4 ELSE 5 END,
    'Event ' || code || ' on ' || host || ' by ' || usr, 'Windows Security', usr, ip,
    jsonb_build_object('EventID', code, 'TargetUserName', usr, 'IpAddress', ip,
        'WorkstationName', host, 'LogonType', 3,
        'ProcessName', 'C:\\Windows\\System32\\svchost.exe'),
    CASE WHEN r4 < 0.99 THEN 'done' ELSE 'pending' END,
    CASE WHEN r4 < 0.99 THEN floor(power(r4 / 0.99, 6) * 100)::int END,
    CASE WHEN r4 < 0.99 THEN 'normal' ELSE '' END, '', 1, NULL, NULL, '', '',
    lower(concat_ws(E'\n', 'Event ' || code || ' on ' || host || ' by ' || usr, host, usr, ip,
        'windows security', code, 3, 'c:\\windows\\system32\\svchost.exe'))
FROM (
    SELECT g, r2, r4, r5,
        now() - %(days)s * interval '1 day' * (1 - g::float8 / %(n)s) AS ts,
        'WS-' || lpad((1 + floor(r1 * 2000))::text, 4, '0') AS host,
        {CODES}[1 + floor(r3 * 12)::int] AS code,
        'user' || (1 + floor(r6 * 5000))::int AS usr,
        '10.' || floor(r1 * 200)::int || '.' || floor(r6 * 250)::int || '.'
            || floor(r3 * 250)::int AS ip
    FROM (SELECT g, random() r1, random() r2, random() r3, random() r4, random() r5, random() r6
          FROM generate_series(%(first)s::bigint, %(last)s::bigint) g) s
) t
"""  # noqa: S608 - constants only; values are bound parameters

# Alerts over 400 days (for ALERTS_RETENTION_DAYS), 20 % open; each linked to 3 events.
ALERTS_SQL = [
    """
INSERT INTO alerts_alert (alert_id, title, description, severity, category, hostname, status,
    created_at, updated_at, resolved_at, resolution, source, rule_id, mitre_techniques, dedup_key,
    is_open, occurrence_count, first_seen, last_seen)
SELECT a, 'Alert ' || a, '', 3 + (a %% 3), 'brute_force', 'WS-' || lpad((a %% 2000)::text, 4, '0'),
    CASE WHEN a %% 5 = 0 THEN 'new' ELSE 'resolved' END, at, at,
    CASE WHEN a %% 5 = 0 THEN NULL ELSE at + interval '1 day' END, '', 'rule', 'bench', '[]', '',
    a %% 5 = 0, 1, at, at
FROM (SELECT a, now() - random() * interval '400 days' AS at
      FROM generate_series(1, %(alerts)s) a) s""",
    "SELECT setval(pg_get_serial_sequence('alerts_alert', 'alert_id'), %(alerts)s)",
    """INSERT INTO alerts_alert_events (alert_id, securityevent_id)
SELECT DISTINCT a, 1 + floor(random() * %(n)s)::bigint
FROM generate_series(1, %(alerts)s) a, generate_series(1, 3) k""",
]

INCIDENTS_SQL = [
    """
INSERT INTO incidents_incident (incident_id, title, description, severity, status,
    escalation_level, created_at, updated_at, resolution)
SELECT i, 'Incident ' || i, '', 4, CASE WHEN i %% 3 = 0 THEN 'open' ELSE 'closed' END, 0,
    now(), now(), ''
FROM generate_series(1, %(incidents)s) i""",
    "SELECT setval(pg_get_serial_sequence('incidents_incident', 'incident_id'), %(incidents)s)",
    """INSERT INTO incidents_incident_alerts (incident_id, alert_id)
SELECT i, (i - 1) * 100 + k FROM generate_series(1, %(incidents)s) i, generate_series(1, 2) k""",
]

ROLLUPS_SQL = """
INSERT INTO events_eventrollup (minute, shard, total, high_severity, ai_attacks)
SELECT date_trunc('minute', "timestamp"), 0, count(*), count(*) FILTER (WHERE severity >= 4),
    count(*) FILTER (WHERE ai_score > 70)
FROM events_securityevent GROUP BY 1 ORDER BY 1
"""


# --- 3: response times ----------------------------------------------------------------------
def timed(fn, rounds: int) -> dict:
    fn()  # warm-up, not counted
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    # One more run with the queries captured: how much of it is the database (what grows with
    # the data), the rest being Python (rendering, serializing; what the machine's load slows).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        fn()
    db_ms = sum(float(query["time"]) for query in queries.captured_queries) * 1000
    return {
        "median_ms": round(statistics.median(samples), 1),
        "p95_ms": round(p95, 1),
        "db_ms": round(db_ms, 1),
        "queries": len(queries.captured_queries),
    }


def measure(args) -> dict:
    import django

    django.setup()
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.test import Client
    from django.utils import timezone

    from accounts.services import issue_access_token
    from events.models import SecurityEvent
    from events.rollups import exact_event_counts
    from siem.pagination import _encode
    from siem.statistics import compute_statistics

    user, _ = User.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    admin = Client()
    admin.force_login(user)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {issue_access_token(user)[0]}")
    now = timezone.now()
    middle = SecurityEvent.objects.get(pk=args.events // 2)
    deep = _encode(middle)
    hour_ago = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    day_start = (now - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    day_end = (now - timedelta(days=29)).isoformat().replace("+00:00", "Z")

    def get(client, url, expect=200):
        def call():
            response = client.get(url)
            assert response.status_code == expect, (url, response.status_code)

        return call

    checks = [
        ("statistics (rollups)", compute_statistics, args.rounds),
        (
            "statistics: exact count of the 24 h events (before)",
            lambda: exact_event_counts(now),
            args.rounds,
        ),
        (
            "GET /api/v1/dashboard/statistics/",
            get(api, "/api/v1/dashboard/statistics/"),
            args.rounds,
        ),
        ("admin events changelist", get(admin, "/admin/events/securityevent/"), args.rounds),
        (
            "admin events, filter severity=5",
            get(admin, "/admin/events/securityevent/?severity__exact=5"),
            args.rounds,
        ),
        (
            "admin events, filter ai_status=pending",
            get(admin, "/admin/events/securityevent/?ai_status__exact=pending"),
            args.rounds,
        ),
        (
            "admin events search q=user42",
            get(admin, "/admin/events/securityevent/?q=user42"),
            args.rounds,
        ),
        (
            "admin events search q=WS-0042",
            get(admin, "/admin/events/securityevent/?q=WS-0042"),
            args.rounds,
        ),
        (
            "admin events search q=10.42.42.42",
            get(admin, "/admin/events/securityevent/?q=10.42.42.42"),
            args.rounds,
        ),
        ("admin alerts changelist", get(admin, "/admin/alerts/alert/"), args.rounds),
        (
            "admin alerts search q=WS-0042",
            get(admin, "/admin/alerts/alert/?q=WS-0042"),
            args.rounds,
        ),
        ("API events, no filter", get(api, "/api/v1/events/"), args.rounds),
        ("API ?computer=WS-0042", get(api, "/api/v1/events/?computer=WS-0042"), args.rounds),
        ("API ?event_code=4625", get(api, "/api/v1/events/?event_code=4625"), args.rounds),
        ("API ?severity_min=4", get(api, "/api/v1/events/?severity_min=4"), args.rounds),
        (
            "API ?severity_min=5&computer=WS-0042",
            get(api, "/api/v1/events/?severity_min=5&computer=WS-0042"),
            args.rounds,
        ),
        ("API ?since=<1 h ago>", get(api, f"/api/v1/events/?since={hour_ago}"), args.rounds),
        (
            "API ?since&until (one day, a month ago)",
            get(api, f"/api/v1/events/?since={day_start}&until={day_end}"),
            args.rounds,
        ),
        ("API ?ai_score_min=90", get(api, "/api/v1/events/?ai_score_min=90"), args.rounds),
        (
            "API ?search=user42 (text search: helper hunt's)",
            get(api, "/api/v1/events/?search=user42"),
            3,
        ),
        ("API ?page=2", get(api, "/api/v1/events/?page=2"), args.rounds),
        ("API ?cursor= (first page)", get(api, "/api/v1/events/?cursor="), args.rounds),
        (
            "API ?cursor=<middle of the table>",
            get(api, f"/api/v1/events/?cursor={deep}"),
            args.rounds,
        ),
        (
            "API ?computer=WS-0042&cursor=<middle>",
            get(api, f"/api/v1/events/?computer=WS-0042&cursor={deep}"),
            args.rounds,
        ),
        (
            f"API ?page={args.events // 100} (OFFSET half the table, for comparison)",
            get(api, f"/api/v1/events/?page={args.events // 100}"),
            3,
        ),
    ]
    if args.skip_offset:
        checks.pop()
    results = {}
    for name, fn, rounds in checks:
        results[name] = timed(fn, rounds)
        r = results[name]
        log(
            f"{name}: median {r['median_ms']} ms, p95 {r['p95_ms']} ms "
            f"(database {r['db_ms']} ms in {r['queries']} queries)"
        )
    return {"timings": results}


# --- 4: retention purge under ingestion ----------------------------------------------------
def ingest_worker() -> int:
    """Child process: batches of 500 through create_events, one line per batch (time, count)."""
    import random

    import django

    django.setup()
    from events.services import create_events

    rng = random.Random(5)
    while True:
        batch = [
            {
                "computer": f"WS-{rng.randint(1, 2000):04d}",
                "event_code": rng.choice([4624, 4625, 4634, 4688]),
                "severity": rng.randint(1, 5),
                "message": "An account failed to log on",
                "source_type": "Windows Security",
                "user_name": f"user{rng.randint(1, 5000)}",
                "source_ip": f"10.0.{rng.randint(0, 250)}.{rng.randint(0, 250)}",
                "raw": {"LogonType": 3},
            }
            for _ in range(500)
        ]
        stored = len(create_events(batch).created)
        print(f"{time.time():.3f} {stored}", flush=True)


def purge_during_ingestion(args, env: dict[str, str]) -> dict:
    import threading
    from datetime import timedelta

    from events import partitions
    from events.models import SecurityEvent
    from siem.retention import PurgeResult, drop_expired_partitions, purge_events

    worker = subprocess.Popen(
        [PYTHON, __file__, "--ingest-worker"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    stamps: list[tuple[float, int]] = []

    def read() -> None:
        for line in worker.stdout:
            moment, stored = line.split()
            stamps.append((float(moment), int(stored)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while len(stamps) < 3 and time.monotonic() < deadline:  # start-up and warm-up
            time.sleep(0.2)
        before = (time.time(), time.time() + args.phase_seconds)
        time.sleep(args.phase_seconds)
        result = PurgeResult()
        if partitions.is_partitioned():
            # The retention of the oldest day partition: detach and drop it whole, then the
            # batched pass over what is left before its end (DEFAULT: the kept events).
            oldest = SecurityEvent.objects.order_by("received_at").values_list(
                "received_at", flat=True
            )[0]
            cutoff = partitions.day_start(partitions.utc_day(oldest) + timedelta(days=1))
            log(f"purging the oldest day (partition, before {cutoff:%Y-%m-%d}) while ingesting")
            during_start = time.time()
            drop_expired_partitions(cutoff, result)
        else:
            # The oldest day of the events not kept for an alert (a previous run left those).
            oldest = (
                SecurityEvent.objects.filter(alerts__isnull=True)
                .order_by("received_at")
                .values_list("received_at", flat=True)
                .first()
            )
            cutoff = oldest + timedelta(days=1)
            log("purging the oldest day (batched deletes) while ingesting")
            during_start = time.time()
        purge_events(cutoff, result)
        during = (during_start, time.time())
        log(
            f"purge: {result.events_deleted} deleted, {result.events_kept} kept, "
            f"{result.partitions_dropped} partition(s) dropped (exclusive lock "
            f"{result.longest_lock_seconds * 1000:.0f} ms), {result.batches} batches, "
            f"in {during[1] - during[0]:.1f} s; load average {os.getloadavg()}"
        )
        after = (time.time(), time.time() + args.phase_seconds)
        time.sleep(args.phase_seconds)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        from harness import delete_redis_keys

        delete_redis_keys(args.redis_url, REDIS_PREFIX)

    def rate(window: tuple[float, float]) -> float:
        stored = sum(n for moment, n in stamps if window[0] <= moment < window[1])
        return round(stored / (window[1] - window[0]), 1)

    def longest_pause(window: tuple[float, float]) -> float:
        """The longest time between two batches ending in the window (an ingestion stall)."""
        moments = [moment for moment, _n in stamps if window[0] <= moment]
        inside = [moment for moment in moments if moment < window[1]]
        moments = inside + moments[len(inside) : len(inside) + 1]  # and the first one after
        return round(max((b - a for a, b in itertools.pairwise(moments)), default=0.0), 2)

    rates = {"before": rate(before), "during": rate(during), "after": rate(after)}
    pauses = {
        "before": longest_pause(before),
        "during": longest_pause(during),
        "after": longest_pause(after),
    }
    log("ingestion events/s: " + ", ".join(f"{k} {v}" for k, v in rates.items()))
    log("longest pause between batches, s: " + ", ".join(f"{k} {v}" for k, v in pauses.items()))
    return {
        "deleted": result.events_deleted,
        "kept": result.events_kept,
        "partitions_dropped": result.partitions_dropped,
        "exclusive_lock_ms": round(result.longest_lock_seconds * 1000, 1),
        "batches": result.batches,
        "longest_pause_between_batches_s": pauses,
        "seconds": round(during[1] - during[0], 1),
        "deleted_per_second": round(result.events_deleted / max(during[1] - during[0], 0.001)),
        "ingest_events_per_second": rates,
    }


# --- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="events to generate")
    parser.add_argument("--days", type=int, default=92, help="event-time span of the events")
    parser.add_argument(
        "--alerts", type=int, default=50_000, help="alerts (and alerts/100 incidents)"
    )
    parser.add_argument("--rounds", type=int, default=15, help="timed repetitions per measurement")
    parser.add_argument(
        "--phase-seconds", type=float, default=20, help="ingestion before/after the purge"
    )
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="bench_scale")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--keep-db", action="store_true", help="reuse the database and keep it after"
    )
    parser.add_argument("--skip-generate", action="store_true", help="use the data already there")
    parser.add_argument("--generate-only", action="store_true", help="stop after generating")
    parser.add_argument(
        "--skip-purge", action="store_true", help="no retention-under-ingestion run"
    )
    parser.add_argument(
        "--skip-offset", action="store_true", help="leave out the deep ?page= (OFFSET) request"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON at the end")
    parser.add_argument("--ingest-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ingest_worker:
        return ingest_worker()

    env = bench_env(args)
    try:
        prepare_database(args, env)
        if not args.skip_generate:
            generate(args)
        if args.generate_only:
            return 0
        os.environ.update(env)
        sys.path.insert(0, str(ROOT / "bench"))
        log(f"measuring; load average {os.getloadavg()}")
        results = measure(args)
        if not args.skip_purge:
            results["purge"] = purge_during_ingestion(args, env)
    finally:
        if not args.keep_db:
            with psycopg.connect(admin_url(args), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            log(f"dropped {args.database}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
