"""Failed-login throttling, shared by every server process through Redis.

Failures are counted per username and per client IP in fixed windows of
LOGIN_FAILURE_WINDOW_SEC. Once a username reaches LOGIN_FAILURE_LIMIT failures, or an IP reaches
LOGIN_FAILURE_IP_LIMIT (default 4 x LOGIN_FAILURE_LIMIT, so one office NAT with a few typos is
not locked out), further attempts get 429 until the window ends — even with the right password,
or guessing would simply go on. A success clears the username's counter only: clearing the IP
counter would let one valid account reset a password-spraying run.

Redis down: attempts are allowed (and a warning is logged). Logins depend on the database, not
Redis, and locking every analyst out during a Redis outage would be worse than a short window
without throttling.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

_clients: dict[str, redis.Redis] = {}


def _client() -> redis.Redis:
    url = settings.REDIS_URL
    if url not in _clients:
        from siem.redis import new_sync_client  # REDIS_URL or the Sentinel master

        _clients[url] = new_sync_client(socket_timeout=2, socket_connect_timeout=2)
    return _clients[url]


def ip_limit() -> int:
    return int(getattr(settings, "LOGIN_FAILURE_IP_LIMIT", 4 * settings.LOGIN_FAILURE_LIMIT))


def _keys(username: str, client_ip: str | None) -> tuple[str, str]:
    # Hash the username: any bytes a client sends become a fixed-size, safe key.
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    prefix = f"{settings.REDIS_KEY_PREFIX}:login-fail"
    return f"{prefix}:user:{digest}", f"{prefix}:ip:{client_ip or 'unknown'}"


@dataclass(frozen=True)
class Blocked:
    retry_after: int
    scope: str  # "username" or "ip"


def check(username: str, client_ip: str | None) -> Blocked | None:
    """A Blocked verdict if this username or IP has failed too often in the current window."""
    user_key, ip_key = _keys(username, client_ip)
    try:
        pipe = _client().pipeline(transaction=False)
        pipe.get(user_key).ttl(user_key).get(ip_key).ttl(ip_key)
        user_count, user_ttl, ip_count, ip_ttl = pipe.execute()
    except redis.RedisError:
        logger.warning("Login throttle unavailable (Redis error); attempt allowed")
        return None
    if int(user_count or 0) >= settings.LOGIN_FAILURE_LIMIT:
        return Blocked(retry_after=_ttl(user_ttl), scope="username")
    if int(ip_count or 0) >= ip_limit():
        return Blocked(retry_after=_ttl(ip_ttl), scope="ip")
    return None


def record_failure(username: str, client_ip: str | None) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SEC
    try:
        pipe = _client().pipeline(transaction=True)
        for key in _keys(username, client_ip):
            # The window starts at the first failure and later ones do not extend it
            # (SET NX EX rather than EXPIRE NX, which the embedded Redis 6.2 lacks).
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
        pipe.execute()
    except redis.RedisError:
        logger.warning("Login throttle unavailable (Redis error); failure not counted")


def record_success(username: str, client_ip: str | None) -> None:
    user_key, _ip_key = _keys(username, client_ip)
    try:
        _client().delete(user_key)
    except redis.RedisError:
        logger.warning("Login throttle unavailable (Redis error)")


def _ttl(value) -> int:
    ttl = int(value or -1)
    return ttl if ttl > 0 else int(settings.LOGIN_FAILURE_WINDOW_SEC)
