"""Sliding windows in event time, kept in Redis so every worker sees the same state.

One sorted set per (rule, group) holds the group's events scored by event time; a second one
holds the events already reported in an alert. A Lua script (atomic in Redis) adds one event and
answers "is this event now inside a window of `window` seconds whose metric reaches the
threshold, and which of that window's events were never reported?". Because add, measure and
mark happen in one atomic step:

- two workers feeding halves of a burst see one merged set: nothing is missed;
- every event is reported at most once: nothing is double-counted, whoever runs first;
- events arriving out of order (imports, agent retries) still land in the right window, since
  the script looks at windows on both sides of the event's own timestamp.

The metric is the number of events (`event_count`) or of distinct values (`value_count`, e.g.
distinct accounts for password spraying). Sets are capped and expire (wall clock), so a key that
stops receiving events disappears.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis
from django.conf import settings

# KEYS: events zset, reported zset.
# ARGV: member ("<event_id>|<value>"), ts, window, threshold, exact (0/1), distinct (0/1),
#       ttl seconds, cap.
# Returns {metric, reported member, ...}: the best metric of a window holding this event, and the
# members of that window reported for the first time (empty unless the threshold is met).
WINDOW_SCRIPT = """
local ts = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local threshold = tonumber(ARGV[4])
local exact = ARGV[5] == '1'
local distinct = ARGV[6] == '1'
local ttl = tonumber(ARGV[7])
local cap = tonumber(ARGV[8])
redis.call('ZADD', KEYS[1], ts, ARGV[1])
if redis.call('ZCARD', KEYS[1]) > cap then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -cap - 1)
end
redis.call('EXPIRE', KEYS[1], ttl)
local flat = redis.call('ZRANGEBYSCORE', KEYS[1], ts - window, ts + window, 'WITHSCORES')
local members, scores = {}, {}
for i = 1, #flat, 2 do
  members[#members + 1] = flat[i]
  scores[#scores + 1] = tonumber(flat[i + 1])
end
local n = #members
local function value_of(member)
  local bar = string.find(member, '|', 1, true)
  return string.sub(member, bar + 1)
end
-- Windows [scores[left], scores[left] + window] that contain ts: left runs over events with
-- ts - window <= score <= ts; right is the last event inside the window.
local best, best_left, best_right = 0, 0, 0
local hit_left, hit_right = 0, 0
local right = 0
local counts, distinct_count = {}, 0
for left = 1, n do
  if scores[left] > ts then break end
  while right < n and scores[right + 1] <= scores[left] + window do
    right = right + 1
    if distinct then
      local v = value_of(members[right])
      counts[v] = (counts[v] or 0) + 1
      if counts[v] == 1 then distinct_count = distinct_count + 1 end
    end
  end
  if scores[left] >= ts - window and right >= left then
    local metric = right - left + 1
    if distinct then metric = distinct_count end
    if metric > best then best, best_left, best_right = metric, left, right end
    if exact and metric == threshold and hit_left == 0 then hit_left, hit_right = left, right end
  end
  if distinct and left <= right then
    local v = value_of(members[left])
    counts[v] = counts[v] - 1
    if counts[v] == 0 then distinct_count = distinct_count - 1 end
  end
end
if not exact and best >= threshold then hit_left, hit_right = best_left, best_right end
local result = {best}
if hit_left > 0 then
  for i = hit_left, hit_right do
    if redis.call('ZADD', KEYS[2], 'NX', scores[i], members[i]) == 1 then
      result[#result + 1] = members[i]
    end
  end
  if redis.call('ZCARD', KEYS[2]) > cap then
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -cap - 1)
  end
  redis.call('EXPIRE', KEYS[2], ttl)
end
return result
"""

_clients: dict[str, redis.Redis] = {}


def default_client() -> redis.Redis:
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5
        )
    return client


@dataclass(frozen=True)
class WindowSpec:
    window_seconds: int
    threshold: int
    exact: bool = False
    distinct: bool = False


@dataclass
class WindowHit:
    """What the window said about one event: its metric, and events newly reported."""

    metric: int
    reported: list[int]  # event ids reported for the first time (empty: not firing)


class WindowStore:
    """Batches window updates into one Redis round trip per micro-batch."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self.client = client or default_client()
        self._script = self.client.register_script(WINDOW_SCRIPT)

    @staticmethod
    def key(rule_id: str, group: tuple[str, ...]) -> str:
        digest = hashlib.sha1("\x1f".join(group).encode(), usedforsecurity=False).hexdigest()
        return f"{settings.REDIS_KEY_PREFIX}:detect:{rule_id}:{digest}"

    def update(
        self, requests: list[tuple[str, tuple[str, ...], WindowSpec, int, float, str]]
    ) -> list[WindowHit]:
        """Add each (rule_id, group, spec, event_id, ts, value) and measure, in order."""
        if not requests:
            return []
        ttl = settings.DETECTION_STATE_TTL_SEC
        cap = settings.DETECTION_STATE_MAX_EVENTS
        pipe = self.client.pipeline(transaction=False)
        for rule_id, group, spec, event_id, ts, value in requests:
            key = self.key(rule_id, group)
            self._script(
                keys=[key, key + ":reported"],
                args=[
                    f"{event_id}|{value}",
                    repr(ts),
                    spec.window_seconds,
                    spec.threshold,
                    int(spec.exact),
                    int(spec.distinct),
                    ttl,
                    cap,
                ],
                client=pipe,
            )
        hits = []
        for reply in pipe.execute():
            members = [m.decode() if isinstance(m, bytes) else m for m in reply[1:]]
            hits.append(WindowHit(int(reply[0]), [int(m.split("|", 1)[0]) for m in members]))
        return hits
