"""Alert page benchmark: the REST calls the alert page makes, for an alert with 10,000
occurrences, on PostgreSQL (SPEC "Investigation"; target: each call < 300 ms).

Builds its own database (`bench_<name>`, dropped afterwards unless --keep): `--background`
events on 50 hosts and 500 users (other traffic the queries must not scan), `--other-alerts`
small alerts on those hosts, and the alert itself: `--occurrences` failed logons of one account
from one source over two hours, raised and repeated through `alerts.services.raise_or_repeat_many`
in micro-batches as detection does (so every occurrence is a linked event). Then it times, in
process through DRF's test client (full middleware, authentication, serialization; no network),
each call the page makes when it opens — detail, events page 1, occurrences, related, comments,
users — `--runs` times after a warm-up, and the page's whole set of calls one after another.

    .venv/bin/python bench/alert_page.py --pg-url postgres://postgres@127.0.0.1:5432
    .venv/bin/python bench/alert_page.py --existing --database hunt_scale_bench  # after
        # bench/hunt.py --keep: the alerts added next to its million events, nothing dropped
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="bench_workspace")
    parser.add_argument("--occurrences", type=int, default=10_000)
    parser.add_argument("--background", type=int, default=200_000)
    parser.add_argument("--other-alerts", type=int, default=300)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="measure on the database a --keep run left"
    )
    parser.add_argument(
        "--existing",
        action="store_true",
        help="add the alerts (no background events) to `--database` as it is, e.g. the million "
        "events bench/hunt.py --keep left; the database is neither created nor dropped",
    )
    return parser.parse_args()


def psql_admin(pg_url: str, sql: str) -> None:
    url = urlparse(pg_url)
    subprocess.run(
        ["psql", "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432), "-U",
         url.username or "postgres", "-d", "postgres", "-qc", sql],
        check=True,
    )  # fmt: skip


def setup_django(args) -> None:
    os.environ.update(
        {
            "SIEM_IGNORE_DOTENV": "1",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": f"{args.pg_url.rstrip('/')}/{args.database}",
            "REDIS_KEY_PREFIX": f"bench-alert-page-{secrets.token_hex(4)}",
            "DJANGO_SETTINGS_MODULE": "siem.settings",
            "ALLOWED_HOSTS": "testserver",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build(args) -> int:
    """Background traffic, other alerts, and the alert; returns the alert's id."""
    from alerts import services
    from events.models import SecurityEvent

    def events(count: int, start: datetime, step: float, **fixed) -> list[SecurityEvent]:
        rows = []
        for i in range(count):
            fields = {
                "computer": f"WS-{i % 50:03d}",
                "user_name": f"user{i % 500}",
                "source_ip": f"10.1.{i % 200}.{i % 250}",
                **fixed,
            }
            rows.append(
                SecurityEvent(
                    timestamp=start + timedelta(seconds=i * step),
                    event_code=4625,
                    severity=3,
                    message="An account failed to log on.",
                    raw={"EventID": 4625, "LogonType": "3", "TargetUserName": fields["user_name"],
                         "IpAddress": fields["source_ip"], "WorkstationName": fields["computer"]},
                    **fields,
                )
            )  # fmt: skip
        return SecurityEvent.objects.bulk_create(rows, batch_size=5000)

    started = time.perf_counter()
    for offset in range(0, args.background, 50_000):
        events(min(50_000, args.background - offset), T0 - timedelta(days=3), 1.0)
    others = events(args.other_alerts * 5, T0 - timedelta(hours=12), 30.0)
    for n in range(args.other_alerts):
        chunk = others[n * 5 : n * 5 + 5]
        services.create_alert(
            title=f"Other alert {n}", severity=3, category="brute_force",
            hostname=chunk[0].computer, events=chunk, source="rule", rule_id="builtin.brute_force",
        )  # fmt: skip
    attack = events(
        args.occurrences,
        T0,
        7200 / args.occurrences,
        computer="WS-042",
        user_name="alice",
        source_ip="185.220.101.47",
    )
    spec = {
        "dedup_key": "builtin.brute_force|WS-042|alice|185.220.101.47",
        "title": "Multiple failed logins",
        "severity": 4,
        "category": "brute_force",
        "hostname": "WS-042",
        "source": "rule",
        "rule_id": "builtin.brute_force",
        "mitre_techniques": ["T1110", "T1110.001"],
    }
    for offset in range(0, len(attack), 500):
        batch = attack[offset : offset + 500]
        services.raise_or_repeat_many(
            [{**spec, "events": batch, "seen_at": batch[-1].timestamp,
              "first_seen": batch[0].timestamp, "count": len(batch)}]
        )  # fmt: skip
    from django.db import connection

    from alerts.models import Alert

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as autovacuum would gather them
    alert = Alert.objects.get(dedup_key=spec["dedup_key"])
    assert alert.occurrence_count == args.occurrences == alert.events.count()
    took = time.perf_counter() - started
    print(
        f"built {args.background:,} background events, {args.other_alerts} other alerts and an"
        f" alert with {alert.occurrence_count:,} occurrences in {took:.0f} s"
    )
    return alert.pk


def measure(args, alert_id: int) -> dict[str, list[float]]:
    from django.contrib.auth.models import Group, User
    from rest_framework.test import APIClient

    from accounts.services import issue_access_token

    user, _ = User.objects.get_or_create(username="bench-analyst")
    user.groups.add(Group.objects.get(name="analyst"))
    token, _session = issue_access_token(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    calls = {
        "detail": f"/api/v1/alerts/{alert_id}/",
        "events page 1": f"/api/v1/alerts/{alert_id}/events/?page=1&page_size=25",
        "events page 400": f"/api/v1/alerts/{alert_id}/events/?page=400&page_size=25",
        "occurrences": f"/api/v1/alerts/{alert_id}/occurrences/",
        "related": f"/api/v1/alerts/{alert_id}/related/",
        "comments": f"/api/v1/alerts/{alert_id}/comments/",
        "users": "/api/v1/users/",
    }
    timings: dict[str, list[float]] = {name: [] for name in [*calls, "whole page (sequential)"]}
    for run in range(args.runs + 3):
        page_started = time.perf_counter()
        for name, path in calls.items():
            started = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (path, response.status_code)
            if name == "events page 1":
                assert response.json()["count"] == args.occurrences
            if run >= 3:  # warm-up runs are not counted
                timings[name].append(elapsed)
        if run >= 3:
            timings["whole page (sequential)"].append((time.perf_counter() - page_started) * 1000)
    return timings


def report(args, timings: dict[str, list[float]]) -> None:
    from events.models import SecurityEvent

    print(f"events in the database: {SecurityEvent.objects.count():,}")
    load = os.getloadavg()
    print(
        f"\n{platform.node()} · {os.cpu_count()} CPUs · {platform.python_version()} · "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'call':<26}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for name, values in timings.items():
        values = sorted(values)
        p95 = values[max(0, round(0.95 * len(values)) - 1)]
        print(f"{name:<26}{statistics.median(values):>9.1f}{p95:>9.1f}{values[-1]:>9.1f}")


def main() -> None:
    args = parse_args()
    if args.existing:
        args.background, args.keep = 0, True
    if not args.reuse and not args.existing:
        psql_admin(args.pg_url, f"DROP DATABASE IF EXISTS {args.database}")
        psql_admin(args.pg_url, f"CREATE DATABASE {args.database}")
    try:
        setup_django(args)
        if args.reuse:
            from alerts.models import Alert

            alert_id = Alert.objects.order_by("-occurrence_count").values_list("pk", flat=True)[0]
        else:
            alert_id = build(args)
        report(args, measure(args, alert_id))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            psql_admin(args.pg_url, f"DROP DATABASE IF EXISTS {args.database}")


if __name__ == "__main__":
    main()
