"""Sequence numbers and a bounded per-channel history, so a client can resume with `?since=`.

One Lua script does, atomically for each (channel, message) of a write:
1. `seq` = INCR `<prefix>:rt:seq:<channel>`. A missing counter (first use, or Redis lost its
   data) starts at the current time in microseconds, so `seq` only ever grows, even across a
   Redis restart without persistence.
2. The message gets `"seq": <n>` as its first key (the text is a JSON object from the manager).
3. XADD to the stream `<prefix>:rt:log:<channel>` with the id `<seq>-0` and the time, trimmed
   to about `REALTIME_HISTORY_MAX` entries; every 64th message also drops entries older than
   `REALTIME_HISTORY_MAX_AGE_SEC`.
4. Once per channel and script call, PUBLISH the call's texts of that channel on
   `<prefix>:rt:<channel>` (what `realtime.fanout` listens to), joined by newlines (a JSON text
   never holds a raw newline). A bulk write of 500 events is then ten pub/sub messages instead
   of a thousand: each server process's hub reads them without falling behind (measured,
   docs/performance.md), and Redis does a fraction of the work.

Because Redis runs the script atomically, publish order equals `seq` order on every channel.

Publishing once: a caller that may publish the same messages again (the events pipeline's
relay, after a process died between publishing and recording it) passes a `key`; each script
call then first sets `<prefix>:rt:once:<key>:<chunk>` (SET NX, 24 hours: ONCE_TTL_SEC) and
publishes nothing if it was already there. Atomic with the publish, so a chunk goes out exactly
once while Redis keeps its data (after a data loss, resuming clients are told to resync anyway).
"""

from __future__ import annotations

import redis
from django.conf import settings

from realtime import presence

DEFAULT_MAX = 2000
DEFAULT_MAX_AGE_SEC = 600
REVOKE = "revoke"

PUBLISH_LUA = """
local prefix = ARGV[1]
local maxlen = tonumber(ARGV[2])
local max_age_ms = tonumber(ARGV[3])
if ARGV[4] ~= '' then
  if not redis.call('SET', prefix .. ':rt:once:' .. ARGV[4], '1', 'NX', 'EX', ARGV[5]) then
    return 0
  end
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local bodies, order = {}, {}
for i = 6, #ARGV, 2 do
  local channel, text = ARGV[i], ARGV[i + 1]
  if channel == 'revoke' then
    redis.call('PUBLISH', prefix .. ':rt:revoke', text)
  else
    local seqkey = prefix .. ':rt:seq:' .. channel
    if redis.call('EXISTS', seqkey) == 0 then
      redis.call('SET', seqkey, string.format('%d', now_ms * 1000))
    end
    local seq = redis.call('INCR', seqkey)
    local sseq = string.format('%d', seq)
    local body = '{"seq":' .. sseq .. ',' .. string.sub(text, 2)
    local log = prefix .. ':rt:log:' .. channel
    redis.call('XADD', log, 'MAXLEN', '~', maxlen, sseq .. '-0', 't', now_ms, 'm', body)
    if seq % 64 == 0 then
      local cutoff = now_ms - max_age_ms
      local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 256)
      local keep = nil
      for _, entry in ipairs(oldest) do
        if tonumber(entry[2][2]) >= cutoff then keep = entry[1] break end
      end
      if keep then redis.call('XTRIM', log, 'MINID', keep) end
    end
    local list = bodies[channel]
    if list == nil then
      list = {}
      bodies[channel] = list
      order[#order + 1] = channel
    end
    list[#list + 1] = body
  end
end
for _, channel in ipairs(order) do
  redis.call('PUBLISH', prefix .. ':rt:' .. channel, table.concat(bodies[channel], '\\n'))
end
return 1
"""


CURRENT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('SET', KEYS[1], string.format('%d', now_ms * 1000))
end
return redis.call('GET', KEYS[1])
"""


ONCE_TTL_SEC = 86400


def _args(sends: list[tuple[str, str]], once: str = "") -> list:
    flat: list = [
        settings.REDIS_KEY_PREFIX,
        int(getattr(settings, "REALTIME_HISTORY_MAX", DEFAULT_MAX)),
        int(getattr(settings, "REALTIME_HISTORY_MAX_AGE_SEC", DEFAULT_MAX_AGE_SEC)) * 1000,
        once,
        ONCE_TTL_SEC,
    ]
    for route, text in sends:
        # Texts are published newline-joined: a raw newline can only be whitespace between
        # JSON tokens (never inside a string), so turning it into a space changes nothing.
        flat.extend((route, text.replace("\n", " ") if "\n" in text else text))
    return flat


def split(data: bytes | str) -> list[str]:
    """The texts of one published message of a channel (see PUBLISH_LUA)."""
    text = data.decode() if isinstance(data, bytes) else data
    return text.split("\n")


_sync_scripts: dict[int, object] = {}


# One retry on a connection error: after a Redis restart the first command on a pooled
# connection finds it closed, and that broadcast would otherwise be lost. (Should the script
# have run and only its reply been lost, the retry sends the messages once more, with new
# `seq`s: a duplicate is better than a gap — unless a `key` makes the publish happen once.)
def publish(sends: list[tuple[str, str]], key: str | None = None) -> None:
    """Sequence, record and publish (sync: views, admin, tasks, commands).

    With `key`, publishing the same `sends` again under the same key publishes nothing more
    (chunk by chunk: the chunks are the same for the same sends).
    """
    client = presence._client()
    script = _sync_scripts.get(id(client))
    if script is None:
        script = _sync_scripts[id(client)] = client.register_script(PUBLISH_LUA)
    for number, chunk in enumerate(_chunks(sends)):
        once = f"{key}:{number}" if key else ""
        try:
            script(args=_args(chunk, once))
        except redis.ConnectionError:
            script(args=_args(chunk, once))


async def apublish(sends: list[tuple[str, str]]) -> None:
    """Sequence, record and publish (async)."""
    client = presence._aclient()
    for chunk in _chunks(sends):
        try:
            await client.eval(PUBLISH_LUA, 0, *_args(chunk))
        except redis.ConnectionError:
            await client.eval(PUBLISH_LUA, 0, *_args(chunk))


def _chunks(sends: list[tuple[str, str]], size: int = 200):
    """A bulk write (1,000 events → 2,000 messages) in several script calls, so Redis is never
    blocked by one long script; order is kept."""
    for start in range(0, len(sends), size):
        yield sends[start : start + size]


def log_key(channel: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:rt:log:{channel}"


def seq_key(channel: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:rt:seq:{channel}"


def seq_of(text: str) -> int | None:
    """The `seq` a text from the script starts with (`{"seq":123,...`), or None."""
    if text.startswith('{"seq":'):
        end = text.find(",", 7)
        if end > 7:
            try:
                return int(text[7:end])
            except ValueError:
                return None
    return None


async def current(channel: str) -> int:
    """The channel's latest `seq` (creating the counter if it does not exist yet)."""
    return int(await presence._aclient().eval(CURRENT_LUA, 1, seq_key(channel)))


async def replay(channel: str, since: int) -> tuple[bool, list[tuple[int, str]], int]:
    """Messages of `channel` after `since`: (complete, [(seq, text)], latest seq).

    `complete` is False when the history no longer reaches back to `since + 1` (trimmed, or
    Redis lost its data), or `since` is ahead of the channel: the client must resync.
    """
    client = presence._aclient()
    # The counter is created here if need be, so the `seq` a client is greeted with always
    # belongs to the counter's current life (a Redis data loss starts a new, larger one).
    latest = await current(channel)
    async with client.pipeline(transaction=True) as pipe:
        pipe.xrange(log_key(channel), "-", "+", count=1)
        pipe.xrange(log_key(channel), f"{since + 1}-0", "+")
        first, entries = await pipe.execute()
    if since > latest:
        return False, [], latest
    if since == latest:
        return True, [], latest
    oldest = int(first[0][0].split(b"-")[0]) if first else None
    if oldest is None or oldest > since + 1:
        return False, [], latest
    found = [(int(entry_id.split(b"-")[0]), fields[b"m"].decode()) for entry_id, fields in entries]
    return True, found, latest


async def fetch_range(channel: str, first: int, last: int) -> list[tuple[int, str]]:
    """Recorded messages with first <= seq <= last (gap filling in the hub)."""
    entries = await presence._aclient().xrange(log_key(channel), f"{first}-0", f"{last}-0")
    return [(int(entry_id.split(b"-")[0]), fields[b"m"].decode()) for entry_id, fields in entries]
