"""WebSocket fan-out benchmark: N clients across several daphne processes, writes through the
events service, latency from the write to each client, loss, memory per connection.

    .venv/bin/python bench/ws_fanout.py                      # 1,000 clients, 2 daphnes, 10 writes/s
    .venv/bin/python bench/ws_fanout.py --rate 20 --fanout core
    .venv/bin/python bench/ws_fanout.py --help

What happens (loopback only, bounded: about a minute with the defaults):
1. A fresh SQLite file and a private Redis key prefix; `migrate`; a user; `--servers` daphne
   processes on ports from `--base-port`, with the fan-out chosen by `--fanout`.
2. `--client-procs` client processes open `--clients` WebSockets to /ws/<channel>
   (round-robin over the servers) with the `websockets` library; daphne RSS is read before
   and after, giving memory per connection.
3. This process writes `--rate` events per second for `--duration` seconds through
   `events.services.create_events` (a real database write; the broadcast follows the commit),
   stamping each event with its write time. Every client records when each event arrives.
4. Report: delivered messages/s, latency write→client (p50/p99/max), lost messages
   (expected = writes × clients), memory per connection, CPU of the daphne processes.

`--stuck N` makes N of the clients stop reading (a frozen browser tab) to see what a slow
client does to the others and to server memory.

`--baseline` first measures the same clients and messages against a bare `websockets` + Redis
pub/sub server per process, `--bare-daphne` against daphne running a bare ASGI app
(bench/ws_bare_daphne.py), then the product, and prints product / baseline ratios (connect
time, CPU per delivery, p50/p99, memory per connection). `--tokens N` spreads the clients over
N sessions (a cold authentication cache for each).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# --fanout: the process hub (REALTIME_FANOUT=hub), or Channels groups on either layer.
FANOUTS = {
    "hub": {"REALTIME_FANOUT": "hub"},
    "pubsub": {
        "REALTIME_FANOUT": "layer",
        "CHANNEL_LAYER_BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
    },
    "core": {
        "REALTIME_FANOUT": "layer",
        "CHANNEL_LAYER_BACKEND": "channels_redis.core.RedisChannelLayer",
    },
}
PASSWORD = "Bench-Passw0rd!x"
BARE_DAPHNE_APP = "bench.ws_bare_daphne:application"
MARK_BYTES = b'"message":"bench '
DRAIN_QUIET_SEC, DRAIN_MAX_SEC = 3, 20
WARMUP_EVENT = {
    "computer": "BENCH-01",
    "event_code": 1000,
    "severity": 1,
    "source_type": "Application",
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients (1000)")
    parser.add_argument("--servers", type=int, default=2, help="daphne processes (2)")
    parser.add_argument("--base-port", type=int, default=8210, help="first daphne port (8210)")
    parser.add_argument("--client-procs", type=int, default=2, help="client processes (2)")
    parser.add_argument("--rate", type=float, default=10, help="writes per second (10)")
    parser.add_argument("--duration", type=float, default=20, help="seconds of writing (20)")
    parser.add_argument("--channel", default="events", help="channel the clients watch (events)")
    parser.add_argument(
        "--fanout",
        choices=sorted(FANOUTS),
        default="hub",
        help="hub: per-process Redis subscription (default); pubsub/core: Channels groups on\n"
        "RedisPubSubChannelLayer / RedisChannelLayer",
    )
    parser.add_argument("--stuck", type=int, default=0, help="clients that never read (0)")
    parser.add_argument(
        "--redis-url", default="", help="Redis for the run (default: REDIS_URL or local 6379)"
    )
    parser.add_argument("--payload-bytes", type=int, default=0, help="padding per event (0)")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="first run the same clients and messages against a bare `websockets` + Redis\n"
        "pub/sub server (one per --servers), then the product; print product/baseline ratios",
    )
    parser.add_argument(
        "--bare-daphne",
        action="store_true",
        help="also run daphne with a bare ASGI fan-out app (bench/ws_bare_daphne.py): daphne's\n"
        "own share of the product's cost",
    )
    parser.add_argument(
        "--tokens", type=int, default=1, help="distinct sessions the clients use (1)"
    )
    parser.add_argument("--serve-baseline", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-key", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--max-buffer-bytes",
        type=int,
        default=None,
        help="servers' REALTIME_MAX_BUFFER_BYTES (0 disables slow-client protection)",
    )
    parser.add_argument(
        "--slow-client-sec", type=int, default=None, help="REALTIME_SLOW_CLIENT_SEC"
    )
    return parser.parse_args(argv)


# --- client processes --------------------------------------------------------------------------
class LiteClient(asyncio.Protocol):
    """A minimal RFC 6455 client, so the measuring clients steal little CPU from the servers on
    this 2-core machine (the `websockets` library costs ~35 us per message; this ~5 us).
    Handshake, unmasked server frames in, masked pongs out (daphne pings idle sockets)."""

    def __init__(self, path: str, host: str, sink: list) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: "
            f"{base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.sink = sink
        self.buffer = bytearray()
        self.upgraded = False
        self.greeted = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        if not self.greeted.done():
            self.greeted.set_exception(ConnectionError("closed before the greeting"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buffer[: buffer.find(b"\r\n")]:
                self.greeted.set_exception(ConnectionError(bytes(buffer[:80]).decode()))
                self.transport.abort()
                return
            del buffer[: end + 4]
            self.upgraded = True
        while len(buffer) >= 2:
            length, offset = buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, offset = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < offset + length:
                return
            opcode = buffer[0] & 0x0F
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            if opcode == 1:
                self.on_text(payload, now)
            elif opcode == 9:  # ping → masked pong with the same payload
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)

    def on_text(self, payload: bytes, now: float) -> None:
        if not self.greeted.done():
            self.greeted.set_result(payload)
            return
        at = payload.find(MARK_BYTES)
        if at >= 0:
            seq, sent = payload[at + len(MARK_BYTES) :].split(b'"', 1)[0].split(b" ")[:2]
            self.sink.append((int(seq), now - float(sent)))


async def _client_main(urls, stuck, ready, go, results, drain_until, progress, slot) -> None:
    loop = asyncio.get_running_loop()
    arrivals: list[list[tuple[int, float]]] = [[] for _ in urls]
    semaphore = asyncio.Semaphore(50)
    started = time.monotonic()

    async def connect(index, url):
        parts = urlsplit(url)
        path = f"{parts.path}?{parts.query}"
        async with semaphore:
            for _attempt in range(5):
                try:
                    _transport, client = await loop.create_connection(
                        lambda: LiteClient(path, parts.netloc, arrivals[index]),
                        parts.hostname,
                        parts.port,
                    )
                    await asyncio.wait_for(client.greeted, 60)
                    return client
                except (TimeoutError, OSError):
                    await asyncio.sleep(0.5)
            raise RuntimeError(f"cannot connect {url}")

    clients = await asyncio.gather(*(connect(i, u) for i, u in enumerate(urls)))
    greeted_after = time.monotonic() - started
    for client in clients[:stuck]:
        client.transport.pause_reading()  # a frozen tab: kernel buffers fill, then daphne's
    ready.put((len(clients), greeted_after))
    while not go.is_set():
        await asyncio.sleep(0.05)
    cpu_start = time.process_time()
    while time.time() < drain_until.value or drain_until.value == 0:
        progress[slot] = sum(len(a) for a in arrivals)
        await asyncio.sleep(0.2)
    results.put((time.process_time() - cpu_start, [arrivals[i] for i in range(stuck, len(urls))]))
    for client in clients:
        client.transport.abort()


def client_process(urls, stuck, ready, go, results, drain_until, progress, slot) -> None:
    asyncio.run(_client_main(urls, stuck, ready, go, results, drain_until, progress, slot))


# --- main --------------------------------------------------------------------------------------
def rss(pids) -> int:
    import psutil

    return sum(psutil.Process(pid).memory_info().rss for pid in pids)


def cpu_seconds(pids) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.serve_baseline:
        asyncio.run(_serve_baseline(args.serve_baseline, args.redis_url, args.baseline_key))
        return {}
    results = {}
    if args.baseline:
        results["baseline"] = run_baseline(args)
    if args.bare_daphne:
        results["bare_daphne"] = run_baseline(args, daphne=True)
    results["product"] = run_product(args)
    if args.baseline:
        base, product = results["baseline"], results["product"]
        results["ratios"] = {
            key: round(product[key] / base[key], 2) if base[key] else None
            for key in (
                "connect_seconds",
                "daphne_cpu_us_per_delivery",
                "latency_ms_p99",
                "latency_ms_p50",
                "kib_per_connection",
            )
        }
        print(f"[bench] product / baseline: {json.dumps(results['ratios'], indent=2)}")
    if args.baseline and args.bare_daphne:
        bare = results["bare_daphne"]
        results["bare_daphne_ratios"] = {
            key: round(bare[key] / base[key], 2) if base[key] else None
            for key in ("connect_seconds", "daphne_cpu_us_per_delivery", "kib_per_connection")
        }
        print(f"[bench] bare daphne / baseline: {json.dumps(results['bare_daphne_ratios'])}")
    return results


def run_product(args) -> dict:
    from tests.ws_servers import Cluster

    workdir = Path(tempfile.mkdtemp(prefix="ws-fanout-"))
    ports = [args.base_port + i for i in range(args.servers)]
    extra = dict(FANOUTS[args.fanout])
    if args.redis_url:
        extra["REDIS_URL"] = args.redis_url
    if args.max_buffer_bytes is not None:
        extra["REALTIME_MAX_BUFFER_BYTES"] = str(args.max_buffer_bytes)
    if args.slow_client_sec is not None:
        extra["REALTIME_SLOW_CLIENT_SEC"] = str(args.slow_client_sec)
    cluster = Cluster(workdir, ports, extra)
    print(f"[bench] preparing database and {args.servers} daphne ({args.fanout} fan-out)…")
    cluster.prepare(PASSWORD)
    os.environ.update(cluster.env)  # this process writes to the same database and Redis
    import django

    django.setup()
    from django.contrib.auth.models import User

    from accounts.services import issue_access_token
    from events.services import create_events

    tokens = [issue_access_token(User.objects.get(username="admin"))[0] for _ in range(args.tokens)]
    cluster.start_all()
    try:
        # Warm each server (imports, first DB connection, layer) before the baseline.
        asyncio.run(_warm(ports, tokens[0], args.channel))
        urls = [
            f"ws://127.0.0.1:{ports[i % len(ports)]}/ws/{args.channel}"
            f"?token={tokens[i % len(tokens)]}"
            for i in range(args.clients)
        ]

        def write(message: str) -> None:
            create_events([{**WARMUP_EVENT, "message": message}])

        result = measure(args, cluster.pids(), urls, write)
    finally:
        cluster.stop_all()
    result["slow_clients_closed"] = sum(
        cluster.log(port).count("Closing a WebSocket that stopped reading") for port in ports
    )
    result["fanout"] = args.fanout
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"[bench] product: {json.dumps(result, indent=2)}")
    return result


def run_baseline(args, daphne: bool = False) -> dict:
    """The same clients, messages and measurement against a bare `websockets` server per
    process (or, with `daphne`, daphne running the bare ASGI app of bench/ws_bare_daphne.py),
    fed by one Redis PUBLISH per write: what the product is measured against."""
    import subprocess

    import redis

    redis_url = args.redis_url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    key = f"ws-baseline-{os.getpid()}"
    ports = [args.base_port + (200 if daphne else 100) + i for i in range(args.servers)]
    label = "bare daphne" if daphne else "baseline"
    print(f"[bench] {label}: {args.servers} bare {'daphne' if daphne else 'websockets'} servers…")
    if daphne:
        env = dict(os.environ, WS_BASELINE_KEY=key, WS_BASELINE_REDIS=redis_url)
        daphne_bin = str(Path(sys.executable).parent / "daphne")
        procs = [
            subprocess.Popen(
                [daphne_bin, "-b", "127.0.0.1", "-p", str(port), BARE_DAPHNE_APP],
                cwd=ROOT,
                env=env,
                stderr=subprocess.DEVNULL,
            )
            for port in ports
        ]
    else:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve-baseline",
                    str(port),
                    "--redis-url",
                    redis_url,
                    "--baseline-key",
                    key,
                ]
            )
            for port in ports
        ]
    client = redis.Redis.from_url(redis_url)
    try:
        for port in ports:
            _wait_port(port)
        urls = [
            f"ws://127.0.0.1:{ports[i % len(ports)]}/ws/{args.channel}" for i in range(args.clients)
        ]

        def write(message: str) -> None:
            body = {
                "type": "event",
                "action": "created",
                "data": {**WARMUP_EVENT, "message": message},
            }
            client.publish(key, json.dumps(body, separators=(",", ":")))

        result = measure(args, [p.pid for p in procs], urls, write)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
    result["fanout"] = "bare-daphne" if daphne else "baseline"
    print(f"[bench] {label}: {json.dumps(result, indent=2)}", flush=True)
    return result


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"baseline server on {port} did not start")


async def _serve_baseline(port: int, redis_url: str, key: str) -> None:
    """A bare fan-out server: greet, then write each published message to every socket."""
    import websockets
    from redis import asyncio as aioredis
    from websockets.asyncio.server import broadcast, serve

    sockets: set = set()
    greeting = json.dumps({"type": "connection", "status": "connected"})

    async def handler(ws) -> None:
        sockets.add(ws)
        try:
            await ws.send(greeting)
            async for _message in ws:
                pass
        except websockets.ConnectionClosed:
            pass
        finally:
            sockets.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
        pubsub = aioredis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(key)
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(sockets, message["data"].decode())


def measure(args, pids: list[int], urls: list[str], write) -> dict:
    """Connect the clients, write `rate` x `duration` messages, collect what arrived."""
    procs = []
    try:
        time.sleep(1)
        rss_before = rss(pids)
        ctx = mp.get_context("spawn")
        ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        drain_until = ctx.Value("d", 0.0)
        progress = ctx.Array("q", args.client_procs, lock=False)
        shares = [urls[i :: args.client_procs] for i in range(args.client_procs)]
        stuck_shares = [args.stuck // args.client_procs] * args.client_procs
        stuck_shares[0] += args.stuck - sum(stuck_shares)
        for slot, (share, stuck) in enumerate(zip(shares, stuck_shares, strict=True)):
            proc = ctx.Process(
                target=client_process,
                args=(share, stuck, ready, go, results, drain_until, progress, slot),
            )
            proc.start()
            procs.append(proc)
        # Each client process reports when its sockets are all greeted; the connect time
        # runs from the start of the client processes to the last greeting.
        connected = 0
        connect_seconds = 0.0
        for _ in procs:
            count, greeted_at = ready.get(timeout=180)
            connected += count
            connect_seconds = max(connect_seconds, greeted_at)
        time.sleep(2)
        rss_after = rss(pids)
        print(f"[bench] {connected} clients connected in {connect_seconds:.2f} s")

        # Warm the writer (imports, the layer's first Redis connection) outside the measurement.
        for _ in range(5):
            write("warm-up")
        go.set()
        time.sleep(0.5)
        cpu_start = cpu_seconds(pids)
        load_start = os.getloadavg()[0]
        writes = int(args.rate * args.duration)
        interval = 1.0 / args.rate
        write_ms: list[float] = []
        padding = " " + "x" * args.payload_bytes if args.payload_bytes else ""
        t_start = time.time()
        for seq in range(writes):
            target = t_start + seq * interval
            delay = target - time.time()
            if delay > 0:
                time.sleep(delay)
            began = time.time()
            write(f"bench {seq} {began:.6f}{padding}")
            write_ms.append((time.time() - began) * 1000)
        t_end = time.time()
        # Drain: until everything arrived, or nothing new for DRAIN_QUIET_SEC (what is still
        # missing then counts as lost), at most DRAIN_MAX_SEC.
        expected_total = writes * (args.clients - args.stuck)
        drain_until.value = time.time() + DRAIN_MAX_SEC
        last, quiet_since = -1, time.time()
        while time.time() < drain_until.value - 0.5:
            time.sleep(0.25)
            seen = sum(progress)
            if seen >= expected_total:
                break
            if seen != last:
                last, quiet_since = seen, time.time()
            elif time.time() - quiet_since > DRAIN_QUIET_SEC:
                break
        drain_until.value = t_drained = time.time()
        per_proc = [results.get(timeout=60) for _ in procs]
        cpu_used = cpu_seconds(pids) - cpu_start
        rss_end = rss(pids)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()

    client_cpu = sum(cpu for cpu, _share in per_proc)
    per_proc = [share for _cpu, share in per_proc]
    latencies = [lat for share in per_proc for client in share for _seq, lat in client]
    readers = args.clients - args.stuck
    expected = writes * readers
    received = len(latencies)
    unique = sum(len({seq for seq, _ in client}) for share in per_proc for client in share)
    first_by_seq: dict[int, float] = {}
    for share in per_proc:
        for client in share:
            for seq, lat in client:
                if lat < first_by_seq.get(seq, float("inf")):
                    first_by_seq[seq] = lat
    last_arrival = t_end + max(latencies, default=0)
    window = max(last_arrival - t_start, 1e-9)
    return {
        "clients": args.clients,
        "stuck_clients": args.stuck,
        "servers": args.servers,
        "writes": writes,
        "write_rate_per_s": round(writes / (t_end - t_start), 1),
        "expected_deliveries": expected,
        "delivered": received,
        "lost": expected - unique,
        "duplicates": received - unique,
        "delivered_per_s": round(received / window),
        "latency_ms_p50": round(percentile(latencies, 0.50) * 1000, 1),
        "latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 1),
        "latency_ms_max": round(max(latencies, default=float("nan")) * 1000, 1),
        "first_client_latency_ms_p50": round(
            percentile(list(first_by_seq.values()), 0.5) * 1000, 1
        ),
        "latency_ms_mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "write_ms_p50": round(percentile(write_ms, 0.5), 1),
        "write_ms_p99": round(percentile(write_ms, 0.99), 1),
        "connect_seconds": round(connect_seconds, 2),
        "daphne_rss_mib_before": round(rss_before / 2**20, 1),
        "daphne_rss_mib_connected": round(rss_after / 2**20, 1),
        "daphne_rss_mib_end": round(rss_end / 2**20, 1),
        "kib_per_connection": round((rss_after - rss_before) / max(connected, 1) / 1024, 1),
        # CPU shares over the whole window: writing, then draining the backlog.
        "daphne_cpu_percent_of_one_core": round(100 * cpu_used / (t_drained - t_start), 1),
        "client_cpu_percent_of_one_core": round(100 * client_cpu / (t_drained - t_start), 1),
        "daphne_cpu_us_per_delivery": round(1e6 * cpu_used / max(received, 1), 1),
        "load_average_1min_at_start": round(load_start, 2),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }


async def _warm(ports, token, channel) -> None:
    import websockets

    for port in ports:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/{channel}?token={token}") as ws:
            await ws.recv()


if __name__ == "__main__":
    main()
