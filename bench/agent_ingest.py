"""Agent ingestion benchmark: sustained events/s through POST /api/v1/agents/events/.

It sets everything up itself on this machine and stops only what it started:

1. (re)creates the PostgreSQL database `--database` (default `siem_bench_agents`), migrates it,
   and creates a viewer user for the WebSocket subscriber;
2. starts `--workers` daphne processes sharing one listening socket (the kernel spreads the
   connections) with an enrollment key, broadcasting on (real Redis channel layer, own key
   prefix) and the post-ingestion pipeline (detection hook) as in production;
3. connects `--subscribers` WebSocket clients to /ws/events and counts the `event` messages they
   receive (so broadcasting is exercised end to end, not only published);
4. runs `--agents` simulated agents (agents/simulator.py: enrollment, heartbeats, batches of flat
   evtx-shaped Windows records with record ids, retries) at `--rate` events/s (0 = as fast as
   the server takes them) for `--warmup` + `--seconds`, counting only the measured window;
5. prints events/s, batch latency, the stored count (checked in the database) and the broadcast
   messages received.

    .venv/bin/python bench/agent_ingest.py --agents 50 --seconds 30 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
from harness import (
    ROOT,
    Subscribers,
    delete_redis_keys,
    run_manage,
    start_servers,
    stop_servers,
    wait_ready,
)

sys.path.insert(0, str(ROOT))

from agents.simulator import Plan, Simulation, Stats  # noqa: E402  (needs ROOT on sys.path)

VIEWER, VIEWER_PASSWORD = "bench-viewer", "bench-Passw0rd!"


# --- server setup ------------------------------------------------------------------------------
def server_env(args, enrollment_key: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "siem.settings",
            "SIEM_IGNORE_DOTENV": "1",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": f"{args.pg_url.rstrip('/')}/{args.database}",
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": f"siem-bench-agents-{secrets.token_hex(3)}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "AGENT_ENROLLMENT_KEY": enrollment_key,
            "AGENT_BATCH_MAX": str(max(1000, args.batch_size)),
            # Bounded connections per daphne process (siem/settings.py: DB_POOL_MAX_SIZE).
            "DB_POOL_MAX_SIZE": str(args.pool_size),
            "DETECTION_ENABLED": "false" if args.no_detection else "true",
        }
    )
    return env


def prepare_database(args, env: dict[str, str]) -> None:
    with psycopg.connect(f"{args.pg_url.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    run_manage(env, "migrate", "--noinput", "-v", "0", quiet=True)
    script = (
        "from django.contrib.auth.models import Group, User\n"
        f"u, _ = User.objects.get_or_create(username={VIEWER!r})\n"
        f"u.set_password({VIEWER_PASSWORD!r}); u.save()\n"
        "u.groups.add(Group.objects.get(name='viewer'))\n"
    )
    run_manage(env, "shell", "-c", script, quiet=True)


def drop_database(args) -> None:
    with psycopg.connect(f"{args.pg_url.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def stored_events(args) -> int:
    with psycopg.connect(f"{args.pg_url.rstrip('/')}/{args.database}") as conn:
        return conn.execute("SELECT count(*) FROM events_securityevent").fetchone()[0]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            pass
    return total


def database_backend_pids(database: str) -> list[int]:
    """PostgreSQL backend processes serving `database` on this machine (same host only)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            if title.startswith("postgres:") and f" {database} " in title:
                pids.append(int(entry.name))
    return pids


# --- load --------------------------------------------------------------------------------------
async def run_load(args, base: str, enrollment_key: str, server_pids: list[int]) -> dict:
    token = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"username": VIEWER, "password": VIEWER_PASSWORD},
        timeout=30,
    ).json()["access_token"]
    ws_url = base.replace("http://", "ws://") + f"/ws/events?token={token}"
    subs = Subscribers(ws_url, args.subscribers).start()

    # elapsed, created, batches, ws messages, server CPU s, database backends' CPU s
    samples: list[tuple[float, int, int, int, float, float]] = []
    backend_cpu: dict[int, float] = {}

    def on_progress(stats: Stats, elapsed: float) -> None:
        for pid in database_backend_pids(args.database):
            backend_cpu[pid] = cpu_seconds([pid]) or backend_cpu.get(pid, 0.0)
        samples.append(
            (
                elapsed,
                stats.created,
                len(stats.latencies),
                subs.events,
                cpu_seconds(server_pids),
                sum(backend_cpu.values()),
            )
        )
        if not args.quiet:
            print(
                f"\r[{elapsed:5.1f}s] stored {stats.created}  batches {stats.batches}  "
                f"errors {stats.errors}  ws events {subs.events}",
                end="",
                flush=True,
            )

    plan = Plan(
        url=base,
        enrollment_key=enrollment_key,
        agents=args.agents,
        rate=args.rate,
        duration=args.warmup + args.seconds,
        batch_size=args.batch_size,
        heartbeat_interval=args.heartbeat_interval,
        scenarios=("office", "brute_force", "password_spray"),
        prefix="BENCH",
        seed=1,
        timeout=120,
    )
    client_cpu = os.times()
    stats = await Simulation(plan, on_progress=on_progress).run()
    client_cpu_seconds = sum(os.times()[:2]) - sum(client_cpu[:2])
    received, drained = await asyncio.to_thread(
        subs.stop, expected=stats.created * args.subscribers
    )
    if not args.quiet:
        print()
    window = [s for s in samples if s[0] >= args.warmup]
    first, last = window[0], window[-1]
    seconds = last[0] - first[0]
    latencies = sorted(stats.latencies[first[2] : last[2]])
    return {
        "agents": args.agents,
        "detection": not args.no_detection,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "rate_target": args.rate or "max",
        "seconds": round(seconds, 1),
        "events_per_sec": round((last[1] - first[1]) / seconds) if seconds else 0,
        "ws_events_per_sec": round((last[3] - first[3]) / seconds) if seconds else 0,
        "server_cpu_percent": round(100 * (last[4] - first[4]) / seconds) if seconds else 0,
        "postgres_cpu_percent": round(100 * (last[5] - first[5]) / seconds) if seconds else 0,
        "batch_p50_ms": round(1000 * statistics.median(latencies)) if latencies else None,
        "batch_p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))])
        if latencies
        else None,
        "bench_client_cpu_percent": round(100 * client_cpu_seconds / samples[-1][0]),
        "sent_total": stats.sent,
        "created_total": stats.created,
        "duplicates": stats.duplicates,
        "retries": stats.retries,
        "errors": stats.errors,
        "last_error": stats.last_error,
        "ws_events_total": received.events,
        "ws_resyncs": received.resyncs,
        "ws_closes": received.closes,
        "ws_drain_sec": round(drained, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Sustained events/s through POST /api/v1/agents/events/ from simulated "
        "agents, into PostgreSQL, with broadcasting and the detection hook on.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--agents", type=int, default=50, help="simulated agents")
    parser.add_argument("--seconds", type=float, default=30, help="measured duration")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured start")
    parser.add_argument("--rate", type=float, default=0, help="target events/s (0 = max)")
    parser.add_argument("--batch-size", type=int, default=500, help="max events per batch")
    parser.add_argument("--heartbeat-interval", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2, help="daphne processes")
    parser.add_argument("--pool-size", type=int, default=8, help="DB connections per process")
    parser.add_argument(
        "--no-detection", action="store_true", help="turn the detection hook off (comparison)"
    )
    parser.add_argument("--subscribers", type=int, default=1, help="/ws/events clients")
    parser.add_argument("--port", type=int, default=8450)
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="siem_bench_agents")
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quiet", action="store_true", help="no live progress")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    enrollment_key = secrets.token_urlsafe(24)
    env = server_env(args, enrollment_key)
    procs: list[subprocess.Popen] = []
    listener = None
    load_before = os.getloadavg()
    try:
        prepare_database(args, env)
        procs, listener = start_servers(args.port, args.workers, env, daphne_args=("-v", "0"))
        base = f"http://127.0.0.1:{args.port}"
        wait_ready(f"{base}/api/v1/agents/", procs)
        result = asyncio.run(run_load(args, base, enrollment_key, [p.pid for p in procs]))
        result["stored_in_database"] = stored_events(args)
    finally:
        stop_servers(procs)
        if listener is not None:
            listener.close()
        if not args.keep_db:
            drop_database(args)
        delete_redis_keys(args.redis_url, env["REDIS_KEY_PREFIX"])
    result["load_average_before"] = [round(x, 2) for x in load_before]
    # CPU spent per stored event by everything this benchmark runs (daphne, its PostgreSQL
    # backends, the load generator), and what that would allow if all cores were ours.
    busy = (
        result["server_cpu_percent"]
        + result["postgres_cpu_percent"]
        + result["bench_client_cpu_percent"]
    )
    if result["events_per_sec"]:
        result["cpu_us_per_event"] = round(busy / 100 / result["events_per_sec"] * 1e6)
        result["cpu_bound_ceiling_events_per_sec"] = round(
            (os.cpu_count() or 1) * 1e6 / result["cpu_us_per_event"]
        )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['events_per_sec']} events/s sustained over {result['seconds']} s "
            f"({args.agents} agents, batches of up to {args.batch_size}, {args.workers} daphne "
            f"process(es)); CPU in % of one core: daphne {result['server_cpu_percent']}, "
            f"PostgreSQL {result['postgres_cpu_percent']}, load generator "
            f"{result['bench_client_cpu_percent']}"
        )
        print(
            f"batch latency p50 {result['batch_p50_ms']} ms, p95 {result['batch_p95_ms']} ms; "
            f"retries {result['retries']}, errors {result['errors']}"
        )
        print(
            f"stored {result['created_total']} (database: {result['stored_in_database']}), "
            f"WebSocket `event` messages received: {result['ws_events_total']} "
            f"({result['ws_events_per_sec']}/s in the window), resync_required "
            f"{result['ws_resyncs']}, closed {result['ws_closes'] or 'never'}, the last "
            f"{result['ws_drain_sec']} s after the load stopped; load average before: "
            f"{result['load_average_before']}"
        )
        if result.get("cpu_us_per_event"):
            print(
                f"CPU per event (daphne + PostgreSQL + generator): {result['cpu_us_per_event']} µs"
                f" → at most ~{result['cpu_bound_ceiling_events_per_sec']} events/s if all "
                f"{os.cpu_count()} cores were this benchmark's alone (a projection, not a measure)"
            )
        if result["errors"]:
            print(f"last error: {result['last_error']}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
