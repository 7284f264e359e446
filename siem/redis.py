"""The one Redis client of the application code (STYLE "one door per concern").

Throttles, one-time tickets, presence and history share these clients: one connection pool per
process (and, for asyncio, per event loop, since an asyncio client is bound to its loop), keyed
by REDIS_URL so a test that points it elsewhere gets a client of its own. Short timeouts: a
count, a throttle or a ticket must never hang a request or a socket on a dead Redis.
"""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

CLIENT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}

_sync_clients: dict[str, redis.Redis] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)


def client() -> redis.Redis:
    """The process's synchronous client for REDIS_URL."""
    url = settings.REDIS_URL
    found = _sync_clients.get(url)
    if found is None:
        found = _sync_clients[url] = redis.Redis.from_url(url, **CLIENT_OPTIONS)
    return found


def aclient() -> aioredis.Redis:
    """The asyncio client of the running event loop for REDIS_URL."""
    loop = asyncio.get_running_loop()
    url, found = _async_clients.get(loop, (None, None))
    if found is None or url != settings.REDIS_URL:
        found = aioredis.Redis.from_url(settings.REDIS_URL, **CLIENT_OPTIONS)
        _async_clients[loop] = (settings.REDIS_URL, found)
    return found


def key(*parts: object) -> str:
    """A key under this deployment's REDIS_KEY_PREFIX."""
    return ":".join([settings.REDIS_KEY_PREFIX, *(str(part) for part in parts)])
