"""Failure throttles shared by every server process: failed logins, wrong enrollment keys.

An attempt is charged *before* the secret is checked, in one Redis script that checks every
counter and increments them all only if none is at its limit. Check and count are one atomic
step, so 40 simultaneous wrong passwords get at most `limit` verdicts and the rest 429 (with a
check-then-count, all 40 read 0 and all were checked). An attempt that turns out right is
refunded (`forgive`), so only failures count.

Each counter lives one fixed window: the first charge sets its expiry, later ones do not
extend it. Redis down: the attempt is allowed and a warning logged; the callers explain why
that is the lesser evil for them.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis

from siem import redis as siem_redis

logger = logging.getLogger(__name__)

# KEYS: counters; ARGV[1]: window (s); ARGV[1 + i]: limit of KEYS[i].
# Returns {0, counts...} when charged, or {i, ttl} when KEYS[i] is already at its limit.
_CHARGE = """
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[i + 1]) then
    return {i, redis.call('TTL', key)}
  end
end
local counts = {0}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 or redis.call('TTL', key) < 0 then
    redis.call('EXPIRE', key, window)
  end
  counts[#counts + 1] = count
end
return counts
"""

# Refund one charge, never below zero (a counter that expired meanwhile stays gone).
_REFUND = """
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count > 1 then
    redis.call('DECR', key)
  elseif count == 1 then
    redis.call('DEL', key)
  end
end
return 0
"""


def digest(value: str) -> str:
    """Any bytes a client sends become a fixed-size, safe key part (user names, addresses)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Scope:
    """One counter: its name (reported as the reason of a 429), key and limit."""

    name: str
    key: str
    limit: int


@dataclass(frozen=True)
class Blocked:
    scope: str
    retry_after: int


@dataclass(frozen=True)
class Charge:
    """An attempt let through. `reached` names the counters this attempt brought to their
    limit: if it fails, the next one is refused (the moment a lockout starts, for the audit)."""

    scopes: tuple[Scope, ...]
    reached: tuple[str, ...] = ()


class FailureThrottle:
    def __init__(self, name: str, window: int, *, label: str) -> None:
        self.name = name  # the Redis key part
        self.label = label  # for log lines: "Login", "Enrollment"
        self.window = int(window)

    def key(self, scope: str, *parts: str) -> str:
        return siem_redis.key(self.name, scope, *(digest(part) for part in parts))

    def charge(self, scopes: list[Scope]) -> Blocked | Charge:
        """Count this attempt against every scope, or say which scope refuses it."""
        try:
            script = siem_redis.client().register_script(_CHARGE)
            result = script(
                keys=[s.key for s in scopes], args=[self.window, *(s.limit for s in scopes)]
            )
        except redis.RedisError:
            logger.warning("%s throttle unavailable (Redis error); attempt allowed", self.label)
            return Charge(scopes=())
        if int(result[0]) != 0:
            ttl = int(result[1])
            scope = scopes[int(result[0]) - 1]
            return Blocked(scope=scope.name, retry_after=ttl if ttl > 0 else self.window)
        counts = [int(count) for count in result[1:]]
        reached = tuple(s.name for s, count in zip(scopes, counts, strict=True) if count == s.limit)
        return Charge(scopes=tuple(scopes), reached=reached)

    def forgive(self, charge: Charge, *, clear: tuple[str, ...] = ()) -> None:
        """The attempt succeeded: refund it, and forget the counters named in `clear`."""
        if not charge.scopes:
            return
        cleared = [s.key for s in charge.scopes if s.name in clear]
        refunded = [s.key for s in charge.scopes if s.name not in clear]
        try:
            client = siem_redis.client()
            if cleared:
                client.delete(*cleared)
            if refunded:
                client.register_script(_REFUND)(keys=refunded)
        except redis.RedisError:
            logger.warning("%s throttle unavailable (Redis error); refund lost", self.label)
