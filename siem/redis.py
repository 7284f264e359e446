"""The app's Redis clients, with or without Sentinel (docs/deployment.md "Redis").

`REDIS_URL` names the server; with `REDIS_SENTINELS` (host:port,host:port) and
`REDIS_SENTINEL_MASTER` set, the server is whichever master the sentinels report (asked again
on every new connection, so a failover is followed without a restart) and REDIS_URL only lends
its password and database number. The channel layer and the Celery broker get the same
choice in `siem/settings.py`; presence, history, tickets, the fan-out hub, the login
throttle and detection windows get their clients here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from django.conf import settings
from redis import asyncio as aioredis


def sentinel_hosts(raw: str | list[str]) -> list[tuple[str, int]]:
    """`"h1:26379,h2:26379"` (or a list of such) → [("h1", 26379), ("h2", 26379)]."""
    items = raw.split(",") if isinstance(raw, str) else raw
    hosts = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {item!r}")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def master_kwargs(url: str) -> dict[str, Any]:
    """Password, user name and database of REDIS_URL, for the master the sentinels name."""
    parts = urlsplit(url)
    kwargs: dict[str, Any] = {}
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    db = parts.path.lstrip("/")
    if db.isdigit():
        kwargs["db"] = int(db)
    return kwargs


def _sentinel_kwargs() -> dict[str, Any]:
    password = getattr(settings, "REDIS_SENTINEL_PASSWORD", "")
    return {"password": password} if password else {}


def _master(sentinel_class, options: dict[str, Any]):
    """A client of the current master, from redis-py's sync or asyncio Sentinel class; the
    sentinels are asked with the same socket timeouts as the master."""
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = sentinel_class(
        settings.REDIS_SENTINELS, sentinel_kwargs={**_sentinel_kwargs(), **timeouts}
    )
    return sentinel.master_for(
        settings.REDIS_SENTINEL_MASTER, **master_kwargs(settings.REDIS_URL), **options
    )


def uses_sentinel() -> bool:
    return bool(getattr(settings, "REDIS_SENTINELS", None))


def new_sync_client(**options: Any) -> redis.Redis:
    """A new client (own pool) for the configured server or Sentinel master."""
    if uses_sentinel():
        from redis.sentinel import Sentinel

        return _master(Sentinel, options)
    return redis.Redis.from_url(settings.REDIS_URL, **options)


def new_async_client(*, pool_size: int | None = None, **options: Any) -> aioredis.Redis:
    """A new asyncio client; bound to the event loop that first uses it.

    `pool_size`: at most that many connections, callers beyond it wait for one. A handshake
    burst (1,000 sockets reconnecting) otherwise opens one Redis connection per concurrent
    command — hundreds of TCP connects that time out on a loaded machine — where a few
    connections, each busy for a fraction of a millisecond per command, serve them all.
    """
    if pool_size and not uses_sentinel():
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=pool_size, timeout=10, **options
        )
        return aioredis.Redis(connection_pool=pool)
    if uses_sentinel():
        from redis.asyncio.sentinel import Sentinel

        return _master(Sentinel, options)
    return aioredis.Redis.from_url(settings.REDIS_URL, **options)


_sync: dict[tuple, redis.Redis] = {}


def sync_client() -> redis.Redis:
    """A shared client with short timeouts (health checks, metrics): a dead Redis answers in
    about two seconds instead of hanging the caller."""
    key = (settings.REDIS_URL, tuple(getattr(settings, "REDIS_SENTINELS", None) or ()))
    client = _sync.get(key)
    if client is None:
        client = _sync[key] = new_sync_client(socket_connect_timeout=2, socket_timeout=2)
    return client
