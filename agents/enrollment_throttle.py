"""Wrong enrollment keys are counted per client address, in Redis (shared by every process).

After ENROLLMENT_FAILURE_LIMIT wrong keys from one address within ENROLLMENT_FAILURE_WINDOW_SEC,
that address gets 429 (with Retry-After) on enrollment — even with the right key — until the
window ends, so nobody can guess the key at the server's speed. A right key does not clear the
counter. Redis down: enrollment is allowed and a warning logged (agents must be able to enroll
while Redis recovers; the key is long and random).
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings

from accounts.login_throttle import _client

logger = logging.getLogger(__name__)


def _limit() -> int:
    return settings.ENROLLMENT_FAILURE_LIMIT


def _window() -> int:
    return settings.ENROLLMENT_FAILURE_WINDOW_SEC


def _key(client_ip: str | None) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:enroll-fail:ip:{client_ip or 'unknown'}"


def blocked_for(client_ip: str | None) -> int | None:
    """Seconds until this address may try again, or None if it may try now."""
    key = _key(client_ip)
    try:
        count, ttl = _client().pipeline(transaction=False).get(key).ttl(key).execute()
    except redis.RedisError:
        logger.warning("Enrollment throttle unavailable (Redis error); attempt allowed")
        return None
    if int(count or 0) >= _limit():
        return int(ttl) if ttl and int(ttl) > 0 else _window()
    return None


def record_failure(client_ip: str | None) -> None:
    key = _key(client_ip)
    try:
        # The window starts at the first failure; later ones do not extend it.
        _client().pipeline(transaction=True).set(key, 0, ex=_window(), nx=True).incr(key).execute()
    except redis.RedisError:
        logger.warning("Enrollment throttle unavailable (Redis error); failure not counted")
