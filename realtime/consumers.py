"""The `/ws/<channel>` consumer: authentication outcome, joining groups, ping, fan-out, revocation.

Life of a socket:
1. Accept, then refuse (error message + application close code) if the middleware found no
   token (4001), a bad one or a user in no role group (4003), or the channel is unknown (4004).
2. Subscribe to the channel's broadcasts and the token's revocation (the process's fan-out
   hub, or in `layer` mode the groups `siem.<channel>` and `siem.session.<jti>`), then
   re-check the session's revocation marker (one Redis EXISTS, in the same round trip as
   the presence record and the channel's current `seq`): a logout that happened between
   validation and subscribing would otherwise never reach this socket.
3. Send the `connection` message (with the channel's `seq`), then with
   `?since=` the missed messages from the history (or `resync_required`), then broadcasts
   that arrived meanwhile; log the guide's two lines.
4. Serve: `ping` → `pong`; anything else → `error`, the socket stays open. Broadcasts arrive
   as the JSON text already serialized by the manager, so fan-out costs one send per socket.
5. Close with `Invalid token` / 4003 when the session is revoked (revocation message, or the
   periodic re-check as a safety net when that message was lost) or when the token expires.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import weakref
from urllib.parse import parse_qs

import redis
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import DEFAULT_CHANNEL_LAYER
from django.conf import settings

from accounts.models import Session
from realtime import backpressure, history, messages, presence
from realtime.auth import INVALID_TOKEN, TOKEN_REQUIRED, is_revoked, revoked_key
from realtime.fanout import get_hub
from realtime.manager import fanout_mode, group_name, session_group
from siem import metrics

logger = logging.getLogger("realtime")

CLOSE_TOKEN_REQUIRED = 4001
CLOSE_INVALID_TOKEN = 4003
CLOSE_UNKNOWN_CHANNEL = 4004
CLOSE_UNAVAILABLE = 1011

CLOSE_BAD_REQUEST = 4000
INVALID_SINCE = "Invalid since: expected a non-negative integer"
INVALID = -1


def since_from_query(query_string: bytes | str) -> int | None:
    """`?since=<seq>`: None when absent, INVALID when not a non-negative integer."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    values = parse_qs(query_string, keep_blank_values=True).get("since")
    if not values:
        return None
    raw = values[0].strip()
    if not raw.isdigit() or len(raw) > 18:
        return INVALID
    return int(raw)


# Client input larger than this is not parsed (a ping is 4 or 16 bytes).
MAX_CLIENT_MESSAGE = 1024
UNSUPPORTED = 'Unsupported message: send "ping" or {"type": "ping"}'


def _inactive_jtis(jtis: list[str]) -> set[str]:
    """Which of these token ids no longer have an active session with an active user.

    In chunks: SQL Server takes at most 2,100 parameters per query.
    """
    active: set[str] = set()
    for start in range(0, len(jtis), 500):
        active.update(
            Session.objects.active()
            .filter(jti__in=jtis[start : start + 500], user__is_active=True)
            .values_list("jti", flat=True)
        )
    return set(jtis) - active


class _SessionWatch:
    """Per event loop: re-checks the sessions of open sockets every few seconds.

    The `session.revoked` group message closes sockets within milliseconds; this one query per
    process per interval is the safety net for a message lost while Redis was unreachable.
    """

    def __init__(self) -> None:
        self.consumers: weakref.WeakSet[RealtimeConsumer] = weakref.WeakSet()
        self.task: asyncio.Task | None = None

    def add(self, consumer: RealtimeConsumer) -> None:
        self.consumers.add(consumer)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        interval = float(getattr(settings, "REALTIME_SESSION_RECHECK_SEC", 30))
        while self.consumers:
            await asyncio.sleep(interval)
            by_jti: dict[str, list[RealtimeConsumer]] = {}
            for consumer in list(self.consumers):
                if consumer.jti:
                    by_jti.setdefault(consumer.jti, []).append(consumer)
            if not by_jti:
                continue
            try:
                inactive = await database_sync_to_async(_inactive_jtis)(list(by_jti))
            except Exception:
                logger.exception("Session re-check failed; retrying")
                continue
            for jti in inactive:
                for consumer in by_jti[jti]:
                    await consumer.refuse_token()


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SessionWatch] = (
    weakref.WeakKeyDictionary()
)


def _watch() -> _SessionWatch:
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = _SessionWatch()
    return watch


class RealtimeConsumer(AsyncWebsocketConsumer):
    channel: str | None = None
    jti: str | None = None
    username: str = ""
    joined: tuple[str, ...] = ()
    _expiry: asyncio.TimerHandle | None = None
    _closing = False
    _hub = None
    # (text, seq) of broadcasts that arrived before the `connection` message and the replay
    _early: list[tuple[str, int | None]] | None = None
    last_seq: int | None = None  # the last `seq` this socket was sent
    _protocol = None  # daphne's protocol, for the hub's direct writes (realtime.backpressure)

    async def dispatch(self, message) -> None:
        """Channels' dispatch without its `aclose_old_connections()` before every handler.

        That call is a hop to the single database thread for every connect, ping and
        disconnect — measured as the main wait of a 1,000-socket reconnect storm (the event
        loop idle while handshakes queue for the one thread). No handler here touches the ORM
        in the event loop: the few database reads (an authentication-cache miss, the periodic
        session re-check) go through `database_sync_to_async`, which closes stale connections
        itself, in its thread.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    @property
    def channel_layer_alias(self) -> str:
        # In `hub` mode sockets need no channel layer at all (no per-socket Redis subscription).
        return DEFAULT_CHANNEL_LAYER if fanout_mode() == "layer" else "realtime-hub-no-layer"

    async def connect(self) -> None:
        await self.accept()
        error = self.scope.get("auth_error")
        if error or self.scope.get("token_identity") is None:
            error = error or TOKEN_REQUIRED
            code = CLOSE_TOKEN_REQUIRED if error == TOKEN_REQUIRED else CLOSE_INVALID_TOKEN
            await self._refuse(error, code)
            return
        channel = self.scope["url_route"]["kwargs"].get("channel", "")
        if channel not in messages.CHANNELS:
            await self._refuse("Unknown channel", CLOSE_UNKNOWN_CHANNEL)
            return
        since = since_from_query(self.scope.get("query_string", b""))
        if since == INVALID:
            await self._refuse(INVALID_SINCE, CLOSE_BAD_REQUEST)
            return
        identity = self.scope["token_identity"]
        self.jti = identity.jti
        self.username = identity.username
        self.member = uuid.uuid4().hex
        logger.info("User %s connecting to %s channel", self.username, channel)
        self.channel, self._early = channel, []
        if not await self._subscribe():
            self.channel = None
            await self._refuse("Real-time service unavailable", CLOSE_UNAVAILABLE)
            return
        # One round trip: the presence record, the revocation marker (a logout between the
        # authentication and the subscription) and, in hub mode, the channel's current `seq`.
        hub = self._hub is not None

        def also(pipe) -> None:
            pipe.exists(revoked_key(self.jti))
            if hub:
                pipe.eval(history.CURRENT_LUA, 1, history.seq_key(channel))

        total, extra = await presence.join_with(channel, self.member, also)
        revoked = bool(extra[0]) if extra is not None else await is_revoked(self.jti)
        if revoked:
            await self._unsubscribe()
            await presence.leave(channel, self.member)
            self.channel = None
            await self._refuse(INVALID_TOKEN, CLOSE_INVALID_TOKEN)
            return
        latest = int(extra[1]) if extra is not None and hub else None
        self._protocol = backpressure.daphne_protocol(self.base_send)
        metrics.connections[channel].inc()
        await self._greet_and_replay(channel, since, latest)
        logger.info("Client connected to channel '%s' (total: %d)", channel, total)
        _watch().add(self)
        self._schedule_expiry(identity.expires_at)

    async def disconnect(self, code) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if self.channel is None:
            return
        await self._unsubscribe()
        channel, self.channel = self.channel, None
        metrics.connections[channel].dec()
        remaining = await presence.leave(channel, self.member)
        logger.info("User %s disconnected from %s channel", self.username, channel)
        logger.info("Client disconnected from channel '%s' (remaining: %d)", channel, remaining)

    # --- client input --------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None) -> None:
        if text_data is not None and len(text_data) <= MAX_CLIENT_MESSAGE:
            if text_data.strip() == "ping":
                await self._send_json(messages.pong())
                return
            try:
                parsed = json.loads(text_data)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and parsed.get("type") == "ping":
                await self._send_json(messages.pong())
                return
        await self._send_json(messages.error(UNSUPPORTED))

    # --- broadcasts ----------------------------------------------------------------------
    async def _greet_and_replay(
        self, channel: str, since: int | None, current: int | None = None
    ) -> None:
        """`connection`, then (with `?since=`) what was missed, then what arrived meanwhile.

        Live messages are held in `_early` from the moment the socket is subscribed, so the
        replay and the live stream overlap; `seq` removes the overlap: no gap, no duplicate.
        """
        latest = None
        replayed: list[tuple[int, str]] = []
        complete = False  # `layer` mode keeps no history: a `since` always needs a resync
        if self._hub is not None:
            try:
                if since is None:
                    latest = current if current is not None else await history.current(channel)
                else:
                    complete, replayed, latest = await history.replay(channel, since)
            except (redis.RedisError, OSError):
                complete, latest = False, None
            if latest is not None:
                self._hub.note_position(channel, latest)
        await self._send_json({**messages.connection(channel), "seq": latest or 0})
        if since is not None:
            if not complete:
                metrics.resync_notices[channel].inc()
                await self._send_json(messages.resync_required(channel, since, latest))
                self.last_seq = latest
            else:
                self.last_seq = since
                for seq, text in replayed:
                    await self._send_frame({"type": "websocket.send", "text": text}, seq)
        elif latest is not None:
            self.last_seq = latest
        while self._early:
            text, seq = self._early.pop(0)
            await self._send_frame({"type": "websocket.send", "text": text}, seq)
        self._early = None

    async def resync(self, notice: dict, latest: int) -> None:
        """The hub lost messages it cannot recover: tell the client to reload, then go on."""
        if self._early is not None:
            self._early.append((json.dumps(notice), None))
        elif self.channel is not None and not self._closing:
            await self._send_json(notice)
        self.last_seq = max(latest, self.last_seq or 0)

    async def deliver(self, text: str) -> None:
        """Write one broadcast (already JSON text) to this socket."""
        await self.deliver_frame({"type": "websocket.send", "text": text})

    def deliver_wire(self, wire: bytes, seq: int | None) -> bool:
        """The hub's direct path: write a pre-built frame to daphne's socket. False when this
        socket cannot take it (no daphne protocol, or still greeting): use `deliver_frame`."""
        protocol = self._protocol
        if protocol is None or self._early is not None:
            return False
        if self.channel is None or self._closing:
            return True
        if seq is not None:
            if self.last_seq is not None and seq <= self.last_seq:
                return True  # already sent by the replay
            self.last_seq = seq
        backpressure.write_frame(protocol, wire)
        return True

    async def deliver_frame(self, frame: dict, seq: int | None = None) -> None:
        """The hub's fast path: the same ASGI `websocket.send` message for every socket."""
        if self._early is not None:
            self._early.append((frame["text"], seq))
        else:
            await self._send_frame(frame, seq)

    async def _send_frame(self, frame: dict, seq: int | None) -> None:
        if self.channel is None or self._closing:
            return
        if seq is not None:
            if self.last_seq is not None and seq <= self.last_seq:
                return  # already sent by the replay
            self.last_seq = seq
        await self.base_send(frame)

    async def broadcast(self, event) -> None:
        """`layer` mode: a group message from the manager; `text` is what the client gets."""
        metrics.deliveries[self.channel].inc()
        await self.deliver(event["text"])

    async def session_revoked(self, event) -> None:
        if self.jti in event.get("jtis", ()):
            await self.refuse_token()

    # --- closing -------------------------------------------------------------------------
    async def refuse_token(self) -> None:
        """The session ended (logout, admin revocation, expiry, user deactivated)."""
        if self.channel is not None and not self._closing:
            await self._refuse(INVALID_TOKEN, CLOSE_INVALID_TOKEN)

    def _schedule_expiry(self, expires_at: float) -> None:
        delay = max(0.0, expires_at - time.time())
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(delay, lambda: asyncio.ensure_future(self.refuse_token()))

    async def _refuse(self, message: str, code: int) -> None:
        self._closing = True
        await self._send_json(messages.error(message))
        await self.close(code=code)

    async def _subscribe(self) -> bool:
        """Start receiving the channel's broadcasts and this token's revocation."""
        if fanout_mode() != "layer":
            self._hub = get_hub()
            return await self._hub.add(self)
        try:
            for group in (group_name(self.channel), session_group(self.jti)):
                await self.channel_layer.group_add(group, self.channel_name)
                self.joined += (group,)
        except Exception:
            logger.exception("Cannot join channel %r: channel layer unavailable", self.channel)
            await self._unsubscribe()
            return False
        return True

    async def _unsubscribe(self) -> None:
        if self._hub is not None:
            self._hub.remove(self)
            self._hub = None
        joined, self.joined = self.joined, ()
        for group in joined:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:
                logger.warning("Leaving group %s failed: channel layer unavailable", group)

    async def _send_json(self, message: dict) -> None:
        await self.send(text_data=json.dumps(message))
