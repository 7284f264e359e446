"""Sliding windows in event time, kept in Redis so every worker sees the same state.

Per (rule, group) three sorted sets, all scored by event time:

- `all`: every event of the group (member `<event_id>|<value>`), for counting;
- `pending`: the events not yet reported in an alert;
- `values` (spraying): each distinct value (account) at the latest time it was seen.

A Lua script (atomic in Redis) adds one event and answers "does a window of `window` seconds
holding this event's own time reach the threshold, and if so which of its events were never
reported?" The windows tried are those ending or starting at the event, starting at the earliest
event of the window before it and ending at the latest event of the window after it. Reported
events leave `pending`. Because add, measure and claim happen in one atomic step:

- two workers feeding halves of a burst see one merged set: nothing is missed;
- every event is reported at most once: nothing is double-counted, whoever runs first;
- events arriving out of order (imports, agent retries) still count in their own time's window;
- a retried event (same id) is added once;
- a retried micro-batch (same `token`: the events pipeline retries a batch whose process died,
  or whose transaction rolled back, after Redis had run its update) gets the first run's answer
  back, kept under `<key>:done:<token>` for DETECTION_STATE_TTL_SEC, instead of being measured
  again: the events it reported are reported again to the retry, and nothing is counted twice.

Sequences (Sigma temporal correlations, the built-in "failures then a success") have their own
script over the same kind of sets, one pair per step, with the same batch-token idempotency
(`SEQUENCE_SCRIPT`, docs/detection.md "Sequences").

Each step is O(log n) plus the events it reports, so a burst of thousands of failed logons
costs the same per event as the first few. Distinct counts use the latest time each value was
seen: exact for events arriving in time order, an undercount for very late ones. Sets are capped
and expire (wall clock), so a group that goes quiet disappears.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

# KEYS: all, pending, values, done (the saved answer for this batch token).
# ARGV: window, threshold, exact (0/1), distinct (0/1), ttl seconds, cap, token ('' for none),
#       then for each event of this group in the batch: member ("<event_id>|<value>"), ts, value.
# Returns {best metric, member, score, member, score...}: the events reported for the first time
# by any of these events' windows (none while below the threshold).
WINDOW_SCRIPT = """
local window = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local exact = ARGV[3] == '1'
local distinct = ARGV[4] == '1'
local ttl = tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
local token = ARGV[7]
if token ~= '' then
  local saved = redis.call('GET', KEYS[4])
  if saved then return cjson.decode(saved) end
end
local counted = KEYS[1]
if distinct then counted = KEYS[3] end
local result = {0}
for e = 8, #ARGV, 3 do
  local member, ts, value = ARGV[e], tonumber(ARGV[e + 1]), ARGV[e + 2]
  if redis.call('ZADD', KEYS[1], 'NX', ts, member) == 1 then
    redis.call('ZADD', KEYS[2], ts, member)
  end
  if distinct then redis.call('ZADD', KEYS[3], 'GT', ts, value) end
  -- Candidate windows holding ts: ending at ts, starting at ts, starting at the earliest event
  -- of the past window, ending at the latest event of the next one (late and early arrivals).
  -- Events in time order (the common case) settle it with the first: stop once it fires.
  local candidates = {{ts - window, ts}}
  local back = redis.call('ZCOUNT', counted, ts - window, ts)
  if exact or back < threshold then
    candidates[2] = {ts, ts + window}
    local first = redis.call('ZRANGEBYSCORE', counted, ts - window, ts, 'WITHSCORES', 'LIMIT', 0, 1)
    if #first > 0 then
      local a = tonumber(first[2])
      candidates[#candidates + 1] = {a, a + window}
    end
    local last = redis.call('ZREVRANGEBYSCORE', counted, ts + window, ts,
                            'WITHSCORES', 'LIMIT', 0, 1)
    if #last > 0 then
      local b = tonumber(last[2])
      candidates[#candidates + 1] = {b - window, b}
    end
  end
  local metric, low, high, fired = -1, 0, 0, false
  for i, w in ipairs(candidates) do
    local m = back
    if i > 1 then m = redis.call('ZCOUNT', counted, w[1], w[2]) end
    if exact then
      if m == threshold and not fired then metric, low, high, fired = m, w[1], w[2], true end
      if not fired and m > metric then metric = m end
    elseif m > metric then
      metric, low, high = m, w[1], w[2]
      fired = m >= threshold
    end
  end
  if metric > result[1] then result[1] = metric end
  if fired then
    local items = redis.call('ZRANGEBYSCORE', KEYS[2], low, high, 'WITHSCORES')
    for i = 1, #items do result[#result + 1] = items[i] end
    if #items > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], low, high) end
  end
end
for i = 1, 3 do
  if redis.call('ZCARD', KEYS[i]) > cap then
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -cap - 1)
  end
  redis.call('EXPIRE', KEYS[i], ttl)
end
if token ~= '' then redis.call('SET', KEYS[4], cjson.encode(result), 'EX', ttl) end
return result
"""

# Sequences (temporal correlations, "failures then success"): per (rule, group) and per step k
# of the sequence, a sorted set of the step's events (`s<k>`) and of those not yet reported
# (`p<k>`), scored by event time.
# KEYS: s1..sn, p1..pn, done. ARGV: window, n, ordered (0/1), anchored (0/1), ttl, cap, token,
#       then n step counts, then for each event: event id, ts, step (1-based).
# Ordered: a chain of count[1] events of step 1, then count[2] of step 2 ... (event times never
# decreasing), first to last within `window`. Unordered (counts are 1): one event of every step
# within `window`. Anchored (ordered only): an event of the last step is kept only when an
# earlier step already has events in the group (it can complete nothing else).
# Returns {fired (0/1), "<event_id>|<step>", score, ...}: the events newly reported.
SEQUENCE_SCRIPT = """
local window = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local ordered = ARGV[3] == '1'
local anchored = ARGV[4] == '1'
local ttl = tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
local token = ARGV[7]
local done = KEYS[2 * n + 1]
if token ~= '' then
  local saved = redis.call('GET', done)
  if saved then return cjson.decode(saved) end
end
local counts = {}
for k = 1, n do counts[k] = tonumber(ARGV[7 + k]) end
local result = {0}

local function report(k, low, high)
  if low > high then return end
  local items = redis.call('ZRANGEBYSCORE', KEYS[n + k], low, high, 'WITHSCORES')
  for i = 1, #items, 2 do
    result[#result + 1] = items[i] .. '|' .. (k - 1)
    result[#result + 1] = items[i + 1]
  end
  if #items > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[n + k], low, high) end
end

-- Ordered: the latest chain ending at `e` (greedy backwards: the latest picks leave the most
-- room for the earlier steps); nil if there is none within the window.
local function chain_back(e)
  local bound, highs = e, {}
  for k = n, 1, -1 do
    local items = redis.call('ZREVRANGEBYSCORE', KEYS[k], bound, e - window,
                             'WITHSCORES', 'LIMIT', 0, counts[k])
    if #items < 2 * counts[k] then return nil end
    highs[k] = tonumber(items[2])
    bound = tonumber(items[#items])
  end
  return highs
end

-- The earliest chain starting at e - window: with chain_back's, it bounds every step's events
-- that lie on some chain ending at `e` (those are reported).
local function chain_forward(e, highs)
  local bound, lows = e - window, {}
  for k = 1, n do
    local items = redis.call('ZRANGEBYSCORE', KEYS[k], bound, e,
                             'WITHSCORES', 'LIMIT', 0, counts[k])
    if #items < 2 * counts[k] then lows[k] = highs[k] else
      lows[k] = tonumber(items[2])
      bound = tonumber(items[#items])
    end
  end
  return lows
end

local function try_ordered(step, ts)
  local ends = {}
  if step == n then ends[1] = ts end
  local later = redis.call('ZRANGEBYSCORE', KEYS[n], '(' .. ts, ts + window, 'WITHSCORES',
                           'LIMIT', 0, 16)
  for i = 2, #later, 2 do ends[#ends + 1] = tonumber(later[i]) end
  for _, e in ipairs(ends) do
    local highs = chain_back(e)
    if highs then
      result[1] = 1
      local lows = chain_forward(e, highs)
      for k = 1, n do report(k, lows[k], highs[k]) end
    end
  end
end

-- Unordered: for each other step its nearest event before and after ts; a window holding ts
-- takes, per step, one of the two. Left extents are tried from the smallest up.
local function try_unordered(step, ts)
  local left, right = {}, {}
  for k = 1, n do
    if k == step then left[k] = 0 else
      local b = redis.call('ZREVRANGEBYSCORE', KEYS[k], ts, ts - window,
                           'WITHSCORES', 'LIMIT', 0, 1)
      if #b > 0 then left[k] = ts - tonumber(b[2]) end
      local a = redis.call('ZRANGEBYSCORE', KEYS[k], ts, ts + window, 'WITHSCORES', 'LIMIT', 0, 1)
      if #a > 0 then right[k] = tonumber(a[2]) - ts end
      if left[k] == nil and right[k] == nil then return end
    end
  end
  local options = {}
  for k = 1, n do if left[k] ~= nil then options[#options + 1] = left[k] end end
  table.sort(options)
  for _, x in ipairs(options) do
    local r, ok = 0, true
    for k = 1, n do
      if left[k] == nil or left[k] > x then
        if right[k] == nil then ok = false break end
        if right[k] > r then r = right[k] end
      end
    end
    if ok and x + r <= window then
      result[1] = 1
      local low, high = ts - x, ts + r
      for k = 1, n do report(k, high - window, low + window) end
      return
    end
  end
end

for e = 8 + n, #ARGV, 3 do
  local member, ts, step = ARGV[e], tonumber(ARGV[e + 1]), tonumber(ARGV[e + 2])
  local keep = true
  if anchored and step == n then
    keep = false
    for k = 1, n - 1 do
      if redis.call('EXISTS', KEYS[k]) == 1 then keep = true end
    end
  end
  if keep then
    if redis.call('ZADD', KEYS[step], 'NX', ts, member) == 1 then
      redis.call('ZADD', KEYS[n + step], ts, member)
    end
    if ordered then try_ordered(step, ts) else try_unordered(step, ts) end
  end
end
for i = 1, 2 * n do
  if redis.call('ZCARD', KEYS[i]) > cap then
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -cap - 1)
  end
  redis.call('EXPIRE', KEYS[i], ttl)
end
if token ~= '' then redis.call('SET', done, cjson.encode(result), 'EX', ttl) end
return result
"""

_clients: dict[str, redis.Redis] = {}


def default_client() -> redis.Redis:
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        # One attempt, short timeouts: ingestion waits for detection, so an outage must cost
        # one failed call, then nothing while the store is marked down (WindowStore.update).
        from siem.redis import new_sync_client  # REDIS_URL or the Sentinel master

        client = _clients[url] = new_sync_client(
            socket_connect_timeout=1, socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )
    return client


@dataclass(frozen=True)
class WindowSpec:
    window_seconds: int
    threshold: int
    exact: bool = False
    distinct: bool = False
    # A sequence (temporal correlation): how many events each step needs, in order. The request's
    # value is then the event's step (0-based).
    steps: tuple[int, ...] = ()
    ordered: bool = False
    anchored: bool = False


@dataclass
class WindowHit:
    """What the window said about one event: its metric, and events newly reported."""

    metric: int
    reported: list[int]  # event ids reported for the first time (empty: not firing)
    first_ts: float | None = None  # earliest event time among them
    last_ts: float | None = None  # latest


class WindowStore:
    """Batches window updates into one Redis round trip per micro-batch."""

    # After a Redis error, window updates are skipped (and logged) for this long instead of
    # making every ingestion batch wait for a connection timeout.
    RETRY_AFTER_SEC = 5.0

    def __init__(self, client: redis.Redis | None = None) -> None:
        self.client = client or default_client()
        self._script = self.client.register_script(WINDOW_SCRIPT)
        self._sequence = self.client.register_script(SEQUENCE_SCRIPT)
        self._down_until = 0.0

    @staticmethod
    def key(rule_id: str, group: tuple[str, ...]) -> str:
        digest = hashlib.sha1("\x1f".join(group).encode(), usedforsecurity=False).hexdigest()
        return f"{settings.REDIS_KEY_PREFIX}:detect:{rule_id}:{digest}"

    def update(
        self,
        requests: list[tuple[str, tuple[str, ...], WindowSpec, int, float, str]],
        token: str | None = None,
    ) -> dict[tuple[str, tuple[str, ...]], WindowHit]:
        """Add each (rule_id, group, spec, event_id, ts, value), in order; hits per group.

        For a sequence spec (`spec.steps`) the value is the event's step (0-based).

        One script call per (rule, group) of the batch, all in one pipeline: a burst of a
        thousand failed logons from one attacker is one call, not a thousand. With a `token`
        (stable across retries of the same micro-batch), a group already updated under that
        token answers as it did the first time and changes nothing.
        """
        if not requests:
            return {}
        if time.monotonic() < self._down_until:
            raise redis.ConnectionError("window store marked down after a recent Redis error")
        ttl = settings.DETECTION_STATE_TTL_SEC
        cap = settings.DETECTION_STATE_MAX_EVENTS
        groups: dict[tuple[str, tuple[str, ...]], list] = {}
        sequences: dict[tuple[str, tuple[str, ...]], int] = {}  # group: number of steps
        for rule_id, group, spec, event_id, ts, value in requests:
            args = groups.get((rule_id, group))
            if spec.steps:
                sequences[(rule_id, group)] = len(spec.steps)
                if args is None:
                    args = groups[(rule_id, group)] = [
                        spec.window_seconds,
                        len(spec.steps),
                        int(spec.ordered),
                        int(spec.anchored),
                        ttl,
                        cap,
                        token or "",
                        *spec.steps,
                    ]
                args += [str(event_id), repr(ts), int(value) + 1]
                continue
            if args is None:
                args = groups[(rule_id, group)] = [
                    spec.window_seconds,
                    spec.threshold,
                    int(spec.exact),
                    int(spec.distinct),
                    ttl,
                    cap,
                    token or "",
                ]
            args += [f"{event_id}|{value}", repr(ts), value]
        # Without a token a resend could lose the events a lost reply reported: send once.
        attempts = 2 if token else 1
        for attempt in range(attempts):
            try:
                replies = self._send(groups, token, sequences)
                break
            except redis.ConnectionError:
                # After a Redis restart the first command on a pooled connection finds it
                # closed; with a token the update is idempotent and may be sent again.
                if attempt + 1 < attempts:
                    continue
                self._down_until = time.monotonic() + self.RETRY_AFTER_SEC
                raise
            except redis.RedisError:
                self._down_until = time.monotonic() + self.RETRY_AFTER_SEC
                raise
        hits = {}
        for name, reply in zip(groups, replies, strict=True):
            pairs = [m.decode() if isinstance(m, bytes) else m for m in reply[1:]]
            members, scores = pairs[0::2], [float(s) for s in pairs[1::2]]
            hits[name] = WindowHit(
                int(reply[0]),
                # An event of two steps of a sequence is reported once.
                list(dict.fromkeys(int(m.split("|", 1)[0]) for m in members)),
                min(scores) if scores else None,
                max(scores) if scores else None,
            )
        return hits

    def _send(self, groups: dict, token: str | None, sequences: dict) -> list:
        """One pipeline of one script call per (rule, group)."""
        pipe = self.client.pipeline(transaction=False)
        for (rule_id, group), args in groups.items():
            key = self.key(rule_id, group)
            done = f"{key}:done:{token}" if token else key + ":done"
            steps = sequences.get((rule_id, group))
            if steps:
                names = [f"{key}:s{k}" for k in range(steps)] + [
                    f"{key}:p{k}" for k in range(steps)
                ]
                self._sequence(keys=[*names, done], args=args, client=pipe)
                continue
            self._script(
                keys=[key + ":all", key + ":pending", key + ":values", done],
                args=args,
                client=pipe,
            )
        return pipe.execute()
