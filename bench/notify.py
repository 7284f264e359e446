"""Notifications under load: alert creation with an integration down vs without integrations.

By default it sets up everything itself on this machine and removes it afterwards:

1. (re)creates the PostgreSQL database `bench_integrations` and migrates it; starts a private
   `redis-server` (the broker: no other worker on the machine can take these tasks) and one
   Celery worker (`--pool=threads --concurrency=--concurrency`);
2. a loopback HTTP server in this process: `/ok` answers 200, `/down` hangs (or answers 500
   with `--down 500`);
3. run A: `--rate` alerts a minute for `--seconds`, created through
   `alerts.services.create_alert` (the path of detection, the API and the admin), with no
   integration; run B: the same with two webhooks, one to `/ok` and one to `/down`
   (INTEGRATION_RATE_PER_MIN raised so that every alert is a message: no digest);
4. prints per run the achieved rate and the create-call latency (which includes the
   notification hook), and for run B the messages `/ok` received: alert messages and how long
   after the alert's `created_at` (p50, p95, max, how many within 10 s), digests and how many
   alerts they carried, plus the down endpoint's attempts;
5. stops only the processes it started, drops the database.

    .venv/bin/python bench/notify.py --seconds 60 --rate 1000 --down hang
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg
import redis
from harness import PYTHON, ROOT, VENV_BIN, run_manage

sys.path.insert(0, str(ROOT))
from tests.integration_helpers import Receiver  # noqa: E402 (after the path is set)

SECRET = "bench-webhook-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores {model}, Python {platform.python_version()}"


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def paced_alerts(create_alert, run: str, rate: int, seconds: int) -> tuple[list[float], float]:
    """Create rate/min alerts for `seconds`; (create-call latencies in ms, achieved per min)."""
    interval = 60.0 / rate
    total = int(rate * seconds / 60)
    latencies = []
    start = time.monotonic()
    for number in range(total):
        due = start + number * interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        began = time.perf_counter()
        create_alert(
            title=f"{run} alert {number}",
            severity=4,
            category="brute_force",
            hostname=f"WS-{number % 200:03d}",
            mitre_techniques=["T1110"],
        )
        latencies.append((time.perf_counter() - began) * 1000)
    elapsed = time.monotonic() - start
    return latencies, total / elapsed * 60


def describe(name: str, latencies: list[float], per_min: float) -> str:
    return (
        f"{name}: {len(latencies)} alerts at {per_min:.0f}/min; create call p50 "
        f"{percentile(latencies, 0.5):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=1000, help="alerts per minute")
    parser.add_argument("--down", choices=["hang", "500"], default="hang")
    parser.add_argument("--pool", default="prefork", help="Celery worker pool (runsiem: prefork)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes/threads")
    parser.add_argument("--rate-limit", type=int, default=20, help="INTEGRATION_RATE_PER_MIN")
    parser.add_argument("--timeout", type=int, default=5, help="INTEGRATION_TIMEOUT_SEC")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="bench_integrations")
    args = parser.parse_args()

    redis_server = shutil.which("redis-server", path=str(VENV_BIN)) or shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("no redis-server binary")
    with psycopg.connect(f"{args.pg_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')

    broker_port = free_port()
    broker_url = f"redis://127.0.0.1:{broker_port}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTEGRATION_", "DJANGO_"))}
    env.update(
        SIEM_IGNORE_DOTENV="1",
        DEBUG="false",
        SECRET_KEY="bench-only-secret-key-for-notifications",
        DJANGO_SETTINGS_MODULE="siem.settings",
        DATABASE_URL=f"{args.pg_url}/{args.database}",
        REDIS_URL=broker_url,
        REDIS_KEY_PREFIX="siem-bench-notify",
        DETECTION_ENABLED="false",
        LOG_LEVEL="WARNING",
        INTEGRATION_TIMEOUT_SEC=str(args.timeout),
        INTEGRATION_RATE_PER_MIN=str(args.rate_limit),
        INTEGRATION_MAX_ATTEMPTS="3",
        INTEGRATION_RETRY_BACKOFF_SEC="5",
    )
    os.environ.update(env)
    broker = subprocess.Popen(
        [redis_server, "--port", str(broker_port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    worker = None
    receiver = Receiver().start()
    receiver.script("/down", ["hang" if args.down == "hang" else 500])
    log_path = Path(f"/tmp/bench-notify-worker-{os.getpid()}.log")  # noqa: S108
    try:
        client = redis.Redis.from_url(broker_url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        run_manage(env, "migrate", "--noinput", quiet=True)
        with log_path.open("w") as log:
            worker = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "siem",
                    "worker",
                    f"--pool={args.pool}",
                    f"--concurrency={args.concurrency}",
                    "--loglevel=WARNING",
                    "--hostname",
                    f"bench-notify-{os.getpid()}@%h",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        import django

        django.setup()
        from alerts.services import create_alert
        from integrations import services
        from integrations.models import Delivery

        time.sleep(5)  # the worker connects to the broker
        print(f"machine: {machine()}")
        print(f"load before run A: {load()}")
        lat_a, rate_a = paced_alerts(create_alert, "A", args.rate, args.seconds)
        print(describe("run A, no integrations", lat_a, rate_a))
        print(f"load after run A: {load()}")

        services.create_integration(
            actor=None, name="ok", kind="webhook", target=f"{receiver.base}/ok", secret=SECRET
        )
        services.create_integration(
            actor=None, name="down", kind="webhook", target=f"{receiver.base}/down", secret=SECRET
        )
        print(f"load before run B: {load()}")
        lat_b, rate_b = paced_alerts(create_alert, "B", args.rate, args.seconds)
        print(describe(f"run B, one webhook healthy and one {args.down}", lat_b, rate_b))
        print(f"load after run B: {load()}")
        expected = len(lat_b)

        def carried() -> int:
            bodies = [json.loads(r.body) for r in receiver.to("/ok")]
            return sum(b["data"]["count"] if b["type"] == "digest" else 1 for b in bodies)

        # Wait for the last window's digest (up to a window and a half).
        deadline = time.monotonic() + 90
        while carried() < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        now_wall, now_mono = time.time(), time.monotonic()
        delays, digests = [], []
        for request in receiver.to("/ok"):
            body = json.loads(request.body)
            arrived = now_wall - (now_mono - request.received_at)
            if body["type"] == "digest":
                end = datetime.fromisoformat(body["data"]["window_end"].replace("Z", "+00:00"))
                digests.append((body["data"]["count"], arrived - end.timestamp()))
                continue
            created = datetime.fromisoformat(body["data"]["created_at"].replace("Z", "+00:00"))
            delays.append(arrived - created.timestamp())
        within = sum(1 for d in delays if d <= 10)
        print(
            f"healthy webhook: {len(delays)} alert messages, after created_at "
            f"p50 {percentile(delays, 0.5):.2f} s, p95 {percentile(delays, 0.95):.2f} s, "
            f"max {max(delays, default=float('nan')):.2f} s, {within} within 10 s; "
            f"{len(digests)} digest(s) carrying {sum(c for c, _ in digests)} alerts, "
            "arriving after their window's end: "
            + ", ".join(f"{late:.1f} s" for _c, late in digests)
            + f"; {carried()} of {expected} alerts notified"
        )
        down = Delivery.objects.filter(integration__name="down")
        print(
            f"{args.down} webhook: {len(receiver.to('/down'))} requests received, delivery log "
            + json.dumps(
                {
                    status: down.filter(status=status).count()
                    for status in ("pending", "retrying", "failed", "sent")
                }
            )
        )
        change = (statistics.median(lat_b) / statistics.median(lat_a) - 1) * 100
        print(f"create-call median B vs A: {change:+.0f} %; per min A {rate_a:.0f}, B {rate_b:.0f}")
    finally:
        receiver.stop()
        for proc in (worker, broker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{args.pg_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        print(f"worker log: {log_path}")


if __name__ == "__main__":
    main()
