"""Per-process fan-out hub: one Redis subscription per server process, not one per socket.

Why not the channel layer's groups (measured, docs/performance.md "Real-time fan-out"): with
either channels-redis layer every message is queued, deserialized and dispatched once per
socket through the consumer's generic receive loop (~150 µs of CPU per delivered message on
this machine). Here a process receives each message once, as the JSON text the client gets,
and writes it straight to each local socket of that channel.

1. Writers PUBLISH on `<REDIS_KEY_PREFIX>:rt:<channel>` the texts of one write, newline-joined
   (see `realtime.history`); revocations PUBLISH a JSON list of token ids on
   `<REDIS_KEY_PREFIX>:rt:revoke`.
2. The hub of each process (one per event loop) keeps a reader task subscribed to those
   channels while it has sockets; a socket is only announced `connected` once the
   subscription is live, so nothing published after the `connection` message is missed.
3. If Redis goes away, the reader reconnects every half second; after Redis is back it
   resubscribes and delivery resumes (within about a second).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections import defaultdict

import redis
from django.conf import settings

from realtime import backpressure, history, messages
from realtime.messages import CHANNELS
from siem import metrics
from siem.redis import new_async_client

logger = logging.getLogger("realtime")

REVOKE = "revoke"
RECONNECT_DELAY_SEC = 0.5
SUBSCRIBE_WAIT_SEC = 5


def redis_channel(name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:rt:{name}"


class Hub:
    def __init__(self) -> None:
        self.channels: dict[str, set] = defaultdict(set)
        self.sessions: dict[str, set] = defaultdict(set)
        self.subscribed = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.last_seq: dict[str, int] = {}  # per channel: the last seq delivered here

    def __len__(self) -> int:
        return sum(len(members) for members in self.channels.values())

    async def add(self, consumer) -> bool:
        """Register a socket; True once its messages are flowing (False: Redis unreachable)."""
        self.channels[consumer.channel].add(consumer)
        if consumer.jti:
            self.sessions[consumer.jti].add(consumer)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())
        if self.subscribed.is_set():
            return True  # the usual case: no timer task per handshake
        try:
            await asyncio.wait_for(self.subscribed.wait(), SUBSCRIBE_WAIT_SEC)
        except TimeoutError:
            self.remove(consumer)
            return False
        return True

    def note_position(self, name: str, seq: int) -> None:
        """A socket was greeted at `seq`: from here on this process must see every message of
        the channel (a jump is filled from the history, or its sockets are told to resync)."""
        self.last_seq.setdefault(name, seq)

    def remove(self, consumer) -> None:
        members = self.channels.get(consumer.channel)
        if members is not None:
            members.discard(consumer)
            if not members:
                del self.channels[consumer.channel]
                self.last_seq.pop(consumer.channel, None)
        sockets = self.sessions.get(consumer.jti)
        if sockets is not None:
            sockets.discard(consumer)
            if not sockets:
                del self.sessions[consumer.jti]

    async def _run(self) -> None:
        names = {redis_channel(name): name for name in (*CHANNELS, REVOKE)}
        while len(self):
            client = new_async_client(socket_connect_timeout=2, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*names)
                # Messages published while this process was not subscribed (a Redis blip):
                # take them from the history before going live.
                for name in list(self.last_seq):
                    await self._fill_gap(name, None)
                self.subscribed.set()
                while len(self):
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        channel = message["channel"]
                        if isinstance(channel, bytes):
                            channel = channel.decode()
                        # No yield between messages on purpose: when messages queue up,
                        # each socket's writes coalesce into one send (measured: yielding
                        # after every message made a backlog feed itself).
                        await self._dispatch(names.get(channel), message["data"])
            except (redis.RedisError, OSError) as exc:
                if self.subscribed.is_set():
                    logger.warning("Real-time subscription lost (%r); reconnecting", exc)
                self.subscribed.clear()
                await asyncio.sleep(RECONNECT_DELAY_SEC)
            except Exception:
                # A bug must not silently end delivery for every socket of this process.
                logger.exception("Real-time fan-out failed; resubscribing")
                self.subscribed.clear()
                await asyncio.sleep(RECONNECT_DELAY_SEC)
            finally:
                await _close(pubsub, client)
        self.subscribed.clear()

    async def _dispatch(self, name: str | None, data: bytes) -> None:
        if name == REVOKE:
            for jti in json.loads(data):
                for consumer in list(self.sessions.get(jti, ())):
                    await consumer.refuse_token()
            return
        if name is None:
            return
        if not self.channels.get(name):
            self.last_seq.pop(name, None)  # nobody here: nothing to keep continuous
            return
        texts = history.split(data)  # one write's messages of this channel, in order
        if texts:
            metrics.observe_hub_lag(name, texts[-1])
        for text in texts:
            seq = history.seq_of(text)
            if seq is not None:
                last = self.last_seq.get(name)
                if last is not None and seq <= last:
                    continue  # already delivered (gap filling raced the live message)
                if last is not None and seq > last + 1:
                    await self._fill_gap(name, seq - 1)
                self.last_seq[name] = seq
            await self._deliver(name, text, seq)

    async def _fill_gap(self, name: str, until: int | None) -> None:
        last = self.last_seq.get(name)
        if last is None:
            return
        try:
            missed = await history.fetch_range(name, last + 1, until if until else 2**62)
            latest = until if until else await history.current(name)
        except (redis.RedisError, OSError):
            # Not now (Redis restarting or still loading its data): going live without the
            # missed messages would lose them, so the reader reconnects and fills the gap from
            # `last_seq` once the history answers; the message that revealed the gap is in it.
            logger.warning("Cannot fill a gap on channel %s yet: history unavailable", name)
            raise
        first = missed[0][0] if missed else latest + 1
        if first > last + 1:
            # The history no longer holds what this process missed (trimmed, or Redis lost
            # it): its sockets cannot be made whole, so they are told to reload everything up
            # to just before the oldest message the history still has; that one and the rest
            # follow the notice, so nothing after the reload point is missed either.
            logger.warning("Gap on channel %s beyond the history: clients told to resync", name)
            reload_point = first - 1
            notice = messages.resync_required(name, last, reload_point)
            consumers = list(self.channels.get(name, ()))
            metrics.resync_notices[name].inc(len(consumers))
            for consumer in consumers:
                await consumer.resync(notice, reload_point)
            self.last_seq[name] = max(reload_point, self.last_seq.get(name, 0))
        for seq, text in missed:
            if seq > self.last_seq.get(name, 0):
                self.last_seq[name] = seq
                await self._deliver(name, text, seq)

    async def _deliver(self, name: str, text: str, seq: int | None) -> None:
        members = self.channels.get(name)
        if not members:
            return
        # One ASGI message for every socket: daphne only reads it.
        frame = {"type": "websocket.send", "text": text}
        wire = None  # the WebSocket frame, built once for every daphne socket
        metrics.deliveries[name].inc(len(members))
        for consumer in list(members):
            try:
                if getattr(consumer, "_protocol", None) is not None:
                    if wire is None:
                        wire = backpressure.text_frame(text)
                    if consumer.deliver_wire(wire, seq):
                        continue
                await consumer.deliver_frame(frame, seq)
            except Exception:
                # One broken socket must not stop the others; it will be cleaned up on close.
                logger.debug("Delivery to one socket failed", exc_info=True)


async def _close(pubsub, client) -> None:
    try:
        await pubsub.aclose()
        await client.aclose()
    except (redis.RedisError, OSError, RuntimeError):
        pass


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub
