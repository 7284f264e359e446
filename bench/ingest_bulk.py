"""REST ingestion benchmark: events per second through POST /api/v1/events/bulk/.

By default it sets up everything itself on this machine:

1. (re)creates the PostgreSQL database `siem_bench_api`, migrates it, creates an analyst user;
2. starts `--workers` daphne processes sharing one listening socket (the kernel spreads the
   connections), with broadcasting on (real Redis channel layer) and the post-ingestion
   pipeline (detection) as in production;
3. logs in, connects `--subscribers` live /ws/events clients, then `--clients` threads each
   POST batches of `--batch` events for `--seconds` (after `--warmup` seconds that are not
   counted), over keep-alive connections;
4. prints events/s, batch latency percentiles, the stored count, and how many of the stored
   events each subscriber received as `event` broadcasts;
5. stops only the processes it started.

With `--url` it targets a running server instead (give `--username`/`--password`).

    .venv/bin/python bench/ingest_bulk.py --seconds 30 --clients 4 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests
from harness import (
    ROOT,
    Subscribers,
    delete_redis_keys,
    run_manage,
    start_servers,
    stop_servers,
    wait_ready,
)

# Everything the servers keep in Redis (detection windows, presence) lives under this prefix,
# and is removed after the run.
REDIS_PREFIX = "siem-bench-api"

CODES = [4624, 4624, 4624, 4634, 4634, 4672, 4688, 4688, 4688, 4625, 4769, 5140]
MESSAGES = {
    4624: "An account was successfully logged on",
    4625: "An account failed to log on",
    4634: "An account was logged off",
    4672: "Special privileges assigned to new logon",
    4688: "A new process has been created",
    4769: "A Kerberos service ticket was requested",
    5140: "A network share object was accessed",
}


def make_batch(size: int, seed: int) -> list[dict]:
    """Realistic Windows security events (mostly benign), each with a raw record."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    batch = []
    for i in range(size):
        code = rng.choice(CODES)
        host = f"WS-{rng.randrange(200):03d}"
        user = f"user{rng.randrange(500)}"
        ip = f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        timestamp = (now - timedelta(seconds=rng.randrange(3600))).isoformat()
        batch.append(
            {
                "computer": host,
                "event_code": code,
                "severity": 3 if code == 4625 else rng.choice([1, 1, 2]),
                "message": MESSAGES[code],
                "source_type": "Windows Security",
                "timestamp": timestamp,
                "user_name": user,
                "source_ip": ip,
                "raw": {
                    "EventID": code,
                    "Computer": host,
                    "Channel": "Security",
                    "TimeCreated": timestamp,
                    "EventRecordID": seed * 1_000_000 + i,
                    "TargetUserName": user,
                    "TargetDomainName": "CORP",
                    "IpAddress": ip,
                    "LogonType": rng.choice([2, 3, 10]),
                    "ProcessName": "C:\\Windows\\System32\\svchost.exe",
                },
            }
        )
    return batch


# --- server setup ------------------------------------------------------------------------------
def server_env(args) -> dict[str, str]:
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
            "MAX_REQUEST_BODY_BYTES": str(32 * 1024 * 1024),
        }
    )
    for item in args.server_env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def prepare_database(args, env: dict[str, str]) -> None:
    with psycopg.connect(f"{args.pg_url.rstrip('/')}/postgres", autocommit=True) as conn:
        if not args.keep_db:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [args.database]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{args.database}"')
    run_manage(env, "migrate", "--noinput", "-v", "0")
    script = (
        "from django.contrib.auth.models import Group, User\n"
        f"u, _ = User.objects.get_or_create(username={args.username!r})\n"
        f"u.set_password({args.password!r}); u.is_active = True; u.save()\n"
        "u.groups.add(Group.objects.get(name='analyst'))\n"
    )
    run_manage(env, "shell", "-c", script)


def login(base: str, username: str, password: str) -> str:
    response = requests.post(
        f"{base}/api/v1/auth/login",
        json={"username": username, "password": password},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access_token"]


class Totals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events = 0
        self.batches = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.first_error = ""


def client_loop(base, token, body, counting, stop, totals: Totals) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"{base}/api/v1/events/bulk/"
    while not stop.is_set():
        started = time.perf_counter()
        try:
            response = session.post(url, data=body, headers=headers, timeout=120)
            ok = response.status_code == 201
            created = response.json()["created"] if ok else 0
            detail = "" if ok else f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as exc:
            ok, created, detail = False, 0, repr(exc)
        elapsed = time.perf_counter() - started
        if not counting.is_set():
            continue
        with totals.lock:
            if ok:
                totals.events += created
                totals.batches += 1
                totals.latencies.append(elapsed)
            else:
                totals.errors += 1
                totals.first_error = totals.first_error or detail


def stored_count(base: str, token: str) -> int:
    response = requests.get(
        f"{base}/api/v1/events/?page_size=1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    response.raise_for_status()
    return response.json()["count"]


def cpu_seconds(procs: list[subprocess.Popen]) -> float:
    """User + system CPU time used so far by the server processes we started (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in procs:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def run_load(args, base: str, procs: list[subprocess.Popen]) -> dict:
    token = login(base, args.username, args.password)
    bodies = [json.dumps(make_batch(args.batch, seed=i + 1)).encode() for i in range(args.clients)]
    before = stored_count(base, token)
    ws_url = base.replace("http://", "ws://", 1) + f"/ws/events?token={token}"
    subscriber = Subscribers(ws_url, args.subscribers).start() if args.subscribers else None
    totals, stop, counting = Totals(), threading.Event(), threading.Event()
    threads = [
        threading.Thread(
            target=client_loop, args=(base, token, bodies[i], counting, stop, totals), daemon=True
        )
        for i in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(args.warmup)
    with totals.lock:
        counting.set()
        started = time.perf_counter()
    cpu_started = os.times()
    server_cpu_started = cpu_seconds(procs)
    time.sleep(args.seconds)
    with totals.lock:
        counting.clear()
        elapsed = time.perf_counter() - started
        events, batches, errors = totals.events, totals.batches, totals.errors
        latencies = sorted(totals.latencies)
    cpu_ended = os.times()
    server_cpu = cpu_seconds(procs) - server_cpu_started
    stop.set()
    for thread in threads:
        thread.join(timeout=180)
    after = stored_count(base, token)
    received, drained = None, None
    if subscriber is not None:
        received, drained = subscriber.stop(expected=(after - before) * args.subscribers)
    return {
        "events": events,
        "batches": batches,
        "errors": errors,
        "first_error": totals.first_error,
        "seconds": elapsed,
        "events_per_sec": events / elapsed if elapsed else 0.0,
        "batch_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "batch_p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
        "stored_during_run": after - before,
        "bench_client_cpu_sec": (cpu_ended.user + cpu_ended.system)
        - (cpu_started.user + cpu_started.system),
        "body_bytes": len(bodies[0]),
        # CPU of the daphne processes only (PostgreSQL and Redis are shared with others here).
        "server_cpu_ms_per_1000_events": 1e6 * server_cpu / events if procs and events else None,
        "load_average_1min": os.getloadavg()[0],
        # Per subscriber: every stored event should arrive once (warm-up and drain included).
        "ws_events_received": received.events / args.subscribers if received else None,
        "ws_resyncs": received.resyncs if received else None,
        "ws_closes": received.closes if received else None,
        "ws_drain_sec": drained,
    }


def breakdown(args, env: dict[str, str], rounds: int = 7) -> dict[str, float]:
    """Median milliseconds per batch of each stage of POST /events/bulk/, in this process.

    Runs against the benchmark database with the servers' settings, one stage at a time:
    what the request spends in parsing, validation, the insert, the broadcast (real channel
    layer) and the post-ingestion pipeline, and the whole request through Django (no daphne).
    """
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone
    from rest_framework.test import APIClient

    from accounts.services import issue_access_token
    from events.api.serializers import EventInputSerializer
    from events.api.views import validate_events
    from events.models import SecurityEvent
    from events.services import after_events_stored, insert_rows
    from realtime.manager import get_connection_manager

    body = json.dumps(make_batch(args.batch, seed=99)).encode()
    client = APIClient()
    token, _session = issue_access_token(User.objects.get(username=args.username))
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def serializer_only():
        serializer = EventInputSerializer(data=json.loads(body), many=True)
        assert serializer.is_valid()

    def validate():
        valid, invalid = validate_events(json.loads(body))
        assert not invalid
        return valid

    def insert():
        now = timezone.now()
        rows = [SecurityEvent(received_at=now, **item) for item in validate()]
        with transaction.atomic():
            return insert_rows(rows)

    def broadcast():
        with transaction.atomic():
            get_connection_manager().broadcast_events(created)

    def request():
        response = client.generic("POST", "/api/v1/events/bulk/", body, "application/json")
        assert response.status_code == 201, response.content[:300]

    created = insert()
    stages = {
        "parse JSON": lambda: json.loads(body),
        "validate with EventInputSerializer(many=True) alone": serializer_only,
        "validate as the bulk view does (fast path)": validate,
        "insert (COPY on PostgreSQL, incl. validation)": insert,
        "broadcast (history script, one call per 200 messages)": broadcast,
        "post-ingestion pipeline (detection)": lambda: after_events_stored(
            created, only=("alerts.detection",)
        ),
        "whole request (Django test client)": request,
    }
    result = {}
    for name, stage in stages.items():
        stage()  # warm up
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            stage()
            timings.append(1000 * (time.perf_counter() - started))
        result[name] = statistics.median(timings)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Events per second through POST /api/v1/events/bulk/ (batches of 500).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--url", help="target a running server (skips database and server set-up)")
    parser.add_argument("--seconds", type=float, default=30, help="measured duration")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured start")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--workers", type=int, default=2, help="daphne processes to start")
    parser.add_argument(
        "--subscribers",
        type=int,
        default=1,
        help="live /ws/events clients counting the broadcasts they receive (0: none)",
    )
    parser.add_argument("--port", type=int, default=8150)
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="siem_bench_api")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database first")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--username", default="bench")
    parser.add_argument("--password", default="bench-Passw0rd!")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the started servers, e.g. "
        "CHANNEL_LAYER_BACKEND=channels.layers.InMemoryChannelLayer to take Redis broadcasting "
        "out of the measurement",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="instead of the HTTP load, time each stage of one batch in-process",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    if args.breakdown:
        env = server_env(args)
        prepare_database(args, env)
        try:
            for name, ms in breakdown(args, env).items():
                print(f"{ms:8.1f} ms  {name}")
        finally:
            delete_redis_keys(args.redis_url, REDIS_PREFIX)
        return 0

    procs: list[subprocess.Popen] = []
    listener = None
    try:
        if args.url:
            base = args.url.rstrip("/")
        else:
            env = server_env(args)
            prepare_database(args, env)
            procs, listener = start_servers(args.port, args.workers, env)
            base = f"http://127.0.0.1:{args.port}"
            wait_ready(f"{base}/api/v1/auth/me", procs)
        result = run_load(args, base, procs)
    finally:
        stop_servers(procs)
        if listener is not None:
            listener.close()
            delete_redis_keys(args.redis_url, REDIS_PREFIX)
    result.update(
        clients=args.clients, batch=args.batch, workers=None if args.url else args.workers
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['events_per_sec']:.0f} events/s  ({result['events']} events in "
            f"{result['batches']} batches of {args.batch}, {result['seconds']:.1f} s, "
            f"{args.clients} clients, {result['workers'] or 'external'} server process(es))"
        )
        if result["batch_p50_ms"] is not None:
            print(
                f"batch latency p50 {result['batch_p50_ms']:.0f} ms, "
                f"p95 {result['batch_p95_ms']:.0f} ms; errors {result['errors']}"
            )
        print(f"stored during the run (incl. warm-up and drain): {result['stored_during_run']}")
        if result["server_cpu_ms_per_1000_events"] is not None:
            print(
                f"daphne CPU: {result['server_cpu_ms_per_1000_events']:.0f} ms per 1000 events; "
                f"1-min load average at the end: {result['load_average_1min']:.1f}"
            )
        if result["ws_events_received"] is not None:
            share = result["ws_events_received"] / max(result["stored_during_run"], 1)
            print(
                f"live /ws/events subscriber(s): {result['ws_events_received']:.0f} event "
                f"broadcasts received each ({100 * share:.1f} % of stored), "
                f"resync_required {result['ws_resyncs']}, closed {result['ws_closes'] or 'never'}"
                f"; the last arrived {result['ws_drain_sec']:.1f} s after the load stopped"
            )
        if result["errors"]:
            print(f"first error: {result['first_error']}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
