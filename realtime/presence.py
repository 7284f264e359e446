"""Cross-process connection counts, kept in Redis.

Every open WebSocket is one member of the sorted set `<REDIS_KEY_PREFIX>:presence:<channel>`,
scored with the moment its record expires. The process holding the socket refreshes the
scores of all its sockets every `REALTIME_PRESENCE_REFRESH_SEC` in one pipeline (one round
trip per process, not per socket). A clean disconnect removes the member at once; a process
that dies stops refreshing, so its members fall out of every count after
`REALTIME_PRESENCE_TTL_SEC`. Counting ignores members whose score is in the past.

Only `settings.REDIS_URL` and `settings.REDIS_KEY_PREFIX` are used, so the embedded Redis of
`runsiem` works the same as a real one. The prefix is read at call time (tests change it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

import redis
from django.conf import settings

from realtime.messages import CHANNELS
from siem import redis as siem_redis

logger = logging.getLogger("realtime")

DEFAULT_TTL_SEC = 30
DEFAULT_REFRESH_SEC = 10


def ttl_seconds() -> float:
    return float(getattr(settings, "REALTIME_PRESENCE_TTL_SEC", DEFAULT_TTL_SEC))


def refresh_seconds() -> float:
    return float(getattr(settings, "REALTIME_PRESENCE_REFRESH_SEC", DEFAULT_REFRESH_SEC))


def key(channel: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:presence:{channel}"


# --- clients: the application's one Redis door (siem/redis.py) -------------------------------
_client = siem_redis.client
_aclient = siem_redis.aclient


# --- counts (sync: the guide's monitoring API, Celery tasks, commands) --------------------------
def count(channel: str) -> int:
    """Live connections to `channel` across all server processes."""
    try:
        return int(_client().zcount(key(channel), f"({time.time()}", "+inf"))
    except redis.RedisError:
        logger.warning("Presence count for channel %r unavailable: Redis unreachable", channel)
        return 0


def total() -> int:
    """Live connections to every channel, across all server processes."""
    now = f"({time.time()}"
    try:
        pipe = _client().pipeline(transaction=False)
        for channel in CHANNELS:
            pipe.zcount(key(channel), now, "+inf")
        return sum(int(n) for n in pipe.execute())
    except redis.RedisError:
        logger.warning("Presence total unavailable: Redis unreachable")
        return 0


def counts() -> dict[str, int]:
    """Per-channel counts in one round trip."""
    now = f"({time.time()}"
    try:
        pipe = _client().pipeline(transaction=False)
        for channel in CHANNELS:
            pipe.zcount(key(channel), now, "+inf")
        return {channel: int(n) for channel, n in zip(CHANNELS, pipe.execute(), strict=True)}
    except redis.RedisError:
        logger.warning("Presence counts unavailable: Redis unreachable")
        return dict.fromkeys(CHANNELS, 0)


# --- membership (async: consumers) ---------------------------------------------------------------
class _LocalMembers:
    """The sockets of this process (per event loop) and the task that keeps them alive in Redis."""

    def __init__(self) -> None:
        self.members: dict[str, str] = {}  # member id -> channel
        self.task: asyncio.Task | None = None

    def ensure_refresher(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while self.members:
            await asyncio.sleep(refresh_seconds())
            try:
                await refresh(self.members)
            except (redis.RedisError, OSError):
                logger.warning("Presence refresh failed: Redis unreachable; retrying")


_local: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LocalMembers] = (
    weakref.WeakKeyDictionary()
)


def _members() -> _LocalMembers:
    loop = asyncio.get_running_loop()
    local = _local.get(loop)
    if local is None:
        local = _local[loop] = _LocalMembers()
    return local


def local_count(channel: str) -> int:
    """Sockets of this process on `channel` (fallback when Redis is unreachable)."""
    return sum(1 for c in _members().members.values() if c == channel)


async def refresh(members: dict[str, str]) -> None:
    """Push the expiry of every given member forward, one pipeline for all of them."""
    if not members:
        return
    expires = time.time() + ttl_seconds()
    by_channel: dict[str, dict[str, float]] = {}
    for member, channel in list(members.items()):
        by_channel.setdefault(channel, {})[member] = expires
    async with _aclient().pipeline(transaction=False) as pipe:
        for channel, scores in by_channel.items():
            pipe.zadd(key(channel), scores)
            pipe.expire(key(channel), int(ttl_seconds() * 2) + 1)
        await pipe.execute()


async def _transaction(build) -> list:
    """Run a MULTI/EXEC pipeline; one retry, because after a Redis restart the first command
    on a pooled connection finds it closed."""
    for attempt in (1, 2):
        try:
            async with _aclient().pipeline(transaction=True) as pipe:
                build(pipe)
                return await pipe.execute()
        except (redis.ConnectionError, OSError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def join(channel: str, member: str) -> int:
    """Record `member` on `channel`; returns the channel's count across processes."""
    return (await join_with(channel, member))[0]


async def join_with(channel: str, member: str, also=None) -> tuple[int, list | None]:
    """`join`, plus the commands `also(pipe)` adds, in the same round trip: a handshake's
    Redis work in one go (the consumer adds its revocation check and the channel's `seq`).
    Returns (count, the results of `also`'s commands, or None when Redis failed)."""
    local = _members()
    local.members[member] = channel
    local.ensure_refresher()
    now = time.time()

    def build(pipe) -> None:
        pipe.zadd(key(channel), {member: now + ttl_seconds()})
        pipe.zremrangebyscore(key(channel), "-inf", now)
        pipe.zcard(key(channel))
        pipe.expire(key(channel), int(ttl_seconds() * 2) + 1)
        if also is not None:
            also(pipe)

    try:
        results = await _transaction(build)
    except (redis.RedisError, OSError):
        logger.warning("Presence record for channel %r not written: Redis unreachable", channel)
        return local_count(channel), None
    return int(results[2]), results[4:]


async def leave(channel: str, member: str) -> int:
    """Drop `member` from `channel`; returns the channel's remaining count across processes."""
    local = _members()
    local.members.pop(member, None)
    now = time.time()

    def build(pipe) -> None:
        pipe.zrem(key(channel), member)
        pipe.zremrangebyscore(key(channel), "-inf", now)
        pipe.zcard(key(channel))

    try:
        return int((await _transaction(build))[2])
    except (redis.RedisError, OSError):
        logger.warning("Presence record for channel %r not removed: Redis unreachable", channel)
        return local_count(channel)
