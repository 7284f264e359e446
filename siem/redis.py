"""The one Redis door of the application code (STYLE "one door per concern"), with or without
Sentinel (docs/deployment.md "Redis").

Throttles, one-time tickets, presence, history, the fan-out hub, detection windows, health
checks and metrics share these clients: one connection pool per process (and, for asyncio, per
event loop, since an asyncio client is bound to its loop), keyed by REDIS_URL so a test that
points it elsewhere gets a client of its own. Short timeouts: a count, a throttle or a ticket
must never hang a request or a socket on a dead Redis.

`REDIS_URL` names the server; with `REDIS_SENTINELS` (host:port,host:port) and
`REDIS_SENTINEL_MASTER` set, the server is whichever master the sentinels report (asked again
on every new connection, so a failover is followed without a restart) and REDIS_URL only lends
its password and database number. The channel layer and the Celery broker get the same
choice in `siem/settings.py`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from django.conf import settings
from redis import asyncio as aioredis

CLIENT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}
# Connections of a server process's shared asyncio client (handshakes, presence, history).
ASYNC_POOL_SIZE = 16


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


def _target() -> tuple:
    return (settings.REDIS_URL, tuple(getattr(settings, "REDIS_SENTINELS", None) or ()))


_sync_clients: dict[tuple, redis.Redis] = {}
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[tuple, aioredis.Redis]
] = weakref.WeakKeyDictionary()


def client() -> redis.Redis:
    """The process's synchronous client for the configured Redis."""
    target = _target()
    found = _sync_clients.get(target)
    if found is None:
        found = _sync_clients[target] = new_sync_client(**CLIENT_OPTIONS)
    return found


# Health checks and metrics read through the same door.
sync_client = client


def aclient() -> aioredis.Redis:
    """The asyncio client of the running event loop for the configured Redis."""
    loop = asyncio.get_running_loop()
    target, found = _async_clients.get(loop, (None, None))
    if found is None or target != _target():
        found = new_async_client(pool_size=ASYNC_POOL_SIZE, **CLIENT_OPTIONS)
        _async_clients[loop] = (_target(), found)
    return found


def key(*parts: object) -> str:
    """A key under this deployment's REDIS_KEY_PREFIX."""
    return ":".join([settings.REDIS_KEY_PREFIX, *(str(part) for part in parts)])
