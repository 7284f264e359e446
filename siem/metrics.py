"""Prometheus metrics: what every process counts, and what `/metrics` computes when scraped.

Two kinds (docs/deployment.md "Health and metrics"):
1. Counted by the process where it happens — WebSocket connections (per channel and process),
   deliveries, hub lag, resync notices, slow-client closes, events ingested, detection latency,
   integration failures. With `PROMETHEUS_MULTIPROC_DIR` set (runsiem, the systemd units and
   compose.yaml set it), every process — each daphne, each Celery worker child — writes its
   values to files in that directory, and `/metrics` of any daphne on the machine sums them
   (prometheus_client's multiprocess mode). Without it, each process reports only its own.
2. Read at scrape time, cluster-wide — connections per channel across all servers (Redis
   presence), the AI backlog (database), the Celery queue depth (broker). Every machine reports
   the same value: aggregate them with `max`, not `sum`.

Updating a metric is a few microseconds; the hot paths (hub fan-out) update once per message
per process, never once per socket.
"""

from __future__ import annotations

import atexit
import logging
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# --- counted where it happens -----------------------------------------------------------------
WS_CONNECTIONS = Gauge(
    "siem_ws_connections",
    "Open WebSocket connections of this server process, per channel",
    ["channel"],
    multiprocess_mode="liveall",  # one series per live process (label `pid`)
)
WS_DELIVERIES = Counter(
    "siem_ws_deliveries",
    "Broadcast messages written to WebSocket clients (one per socket)",
    ["channel"],
)
WS_HUB_LAG = Histogram(
    "siem_ws_hub_lag_seconds",
    "Time from a broadcast's write to its arrival in a server process's fan-out hub",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WS_RESYNC_NOTICES = Counter(
    "siem_ws_resync_notices",
    "resync_required notices sent to clients (history could not fill their gap)",
    ["channel"],
)
WS_SLOW_CLIENT_CLOSES = Counter(
    "siem_ws_slow_client_closes",
    "WebSockets closed with 4008 because the client stopped reading",
)
EVENTS_INGESTED = Counter("siem_events_ingested", "Security events stored")
DETECTION_LATENCY = Histogram(
    "siem_detection_latency_seconds",
    "Time from an ingestion batch's arrival to the end of detection over it",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
# Incremented by the integrations (webhook, Slack, Telegram, e-mail) on a failed delivery
# attempt; defined here so dashboards and alerts can rely on the name whatever ships it.
INTEGRATION_FAILURES = Counter(
    "siem_integration_failures",
    "Failed notification deliveries to integrations (each attempt)",
    ["kind"],
)

# The backlog count stops here: an exact COUNT over millions of pending rows is itself a load.
AI_BACKLOG_CAP = 100_000


class _ChannelChildren(dict):
    """`metric.labels(channel)` cached per channel: the label lookup is the costly part."""

    def __init__(self, metric) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, channel: str):
        child = self[channel] = self.metric.labels(channel)
        return child


deliveries = _ChannelChildren(WS_DELIVERIES)
hub_lag = _ChannelChildren(WS_HUB_LAG)
connections = _ChannelChildren(WS_CONNECTIONS)
resync_notices = _ChannelChildren(WS_RESYNC_NOTICES)


def observe_hub_lag(channel: str, text: str) -> None:
    """The lag of one broadcast, from the ISO `timestamp` the manager stamped at the write."""
    at = text.rfind('"timestamp":"')
    if at < 0:
        return
    start = at + 13
    try:
        # "2026-12-01T23:20:12.345Z": fixed width, so no parsing of the whole message.
        written = _epoch(text[start : start + 23])
    except ValueError:
        return
    hub_lag[channel].observe(max(0.0, time.time() - written))


def _epoch(stamp: str) -> float:
    from datetime import UTC, datetime

    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


# --- read at scrape time ---------------------------------------------------------------------
class ClusterCollector:
    """Gauges whose truth lives in shared stores (Redis, the database), read per scrape.

    Each read is bounded and failure-tolerant: an unreachable store yields no sample (and
    `siem_scrape_errors` names it) rather than a failed scrape.
    """

    def collect(self):
        errors = GaugeMetricFamily(
            "siem_scrape_errors", "Stores this scrape could not read (1 = failed)", labels=["store"]
        )
        presence = GaugeMetricFamily(
            "siem_ws_cluster_connections",
            "Open WebSocket connections across every server process, per channel (Redis presence)",
            labels=["channel"],
        )
        try:
            for channel, count in _presence_counts().items():
                presence.add_metric([channel], count)
            errors.add_metric(["presence"], 0)
        except Exception:
            logger.warning("metrics: presence counts unavailable", exc_info=True)
            errors.add_metric(["presence"], 1)
        yield presence

        queue = GaugeMetricFamily(
            "siem_celery_queue_depth", "Tasks waiting in the Celery broker queue", labels=["queue"]
        )
        try:
            from siem.redis import sync_client

            queue.add_metric(["celery"], int(sync_client().llen("celery")))
            errors.add_metric(["broker"], 0)
        except Exception:
            logger.warning("metrics: Celery queue depth unavailable", exc_info=True)
            errors.add_metric(["broker"], 1)
        yield queue

        backlog = GaugeMetricFamily(
            "siem_ai_backlog",
            f"Events waiting for AI analysis (counted up to {AI_BACKLOG_CAP})",
        )
        try:
            backlog.add_metric([], _ai_backlog())
            errors.add_metric(["database"], 0)
        except Exception:
            logger.warning("metrics: AI backlog unavailable", exc_info=True)
            errors.add_metric(["database"], 1)
        yield backlog
        yield errors


def _presence_counts() -> dict[str, int]:
    """Like `presence.counts()`, but a Redis failure raises instead of reading as zeros."""
    from realtime import presence

    now = f"({time.time()}"
    pipe = presence._client().pipeline(transaction=False)
    for channel in presence.CHANNELS:
        pipe.zcount(presence.key(channel), now, "+inf")
    values = pipe.execute()
    return {channel: int(n) for channel, n in zip(presence.CHANNELS, values, strict=True)}


def _ai_backlog() -> int:
    from events.models import AnalysisStatus, SecurityEvent

    pending = SecurityEvent.objects.filter(ai_status=AnalysisStatus.PENDING)
    return pending.order_by()[:AI_BACKLOG_CAP].count()


_cluster_collector = ClusterCollector()


def registry() -> CollectorRegistry:
    """This scrape's registry: the multiprocess files (or this process's metrics) + the cluster."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
    else:
        from prometheus_client import REGISTRY

        scrape = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):
            scrape.register(collector)
    scrape.register(_cluster_collector)
    return scrape


def exposition() -> tuple[bytes, str]:
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def _mark_dead() -> None:
    """A cleanly exiting process drops its live gauges (connections) from the sums."""
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(os.getpid())
    except OSError:
        pass


if MULTIPROCESS:
    atexit.register(_mark_dead)
