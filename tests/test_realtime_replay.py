"""Sequence numbers and resuming with `?since=` (issue 9): complete, in order, no duplicates,
no gap at the seam; `resync_required` when the history does not reach back far enough.

User: `admin` (group admin) from conftest; real Redis and database.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from accounts.services import issue_access_token
from alerts import services as alert_services
from realtime import history
from tests.test_ws_consumers import no_presence_records, role_groups  # noqa: F401 (fixtures)
from tests.ws_helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)

ALERT = {"severity": 4, "category": "brute_force", "hostname": "WS-001"}


@pytest.fixture
def token(admin_user) -> str:
    return issue_access_token(admin_user)[0]


@pytest.fixture(autouse=True)
def fresh_history():
    """Each test starts with no sequence counters or history under this run's prefix."""
    from realtime import presence
    from realtime.messages import CHANNELS

    def wipe():
        keys = [history.log_key(c) for c in CHANNELS] + [history.seq_key(c) for c in CHANNELS]
        presence._client().delete(*keys)

    wipe()
    yield
    wipe()


def create_alerts(count: int, prefix: str = "alert") -> None:
    for i in range(count):
        alert_services.create_alert(title=f"{prefix} {i}", **ALERT)


async def connect(channel: str, token: str, since: int | None = None) -> tuple[Client, dict]:
    query = f"token={token}" + (f"&since={since}" if since is not None else "")
    client = Client(f"/ws/{channel}?{query}")
    assert (await client.connect())[0]
    hello = await client.receive()
    assert hello["type"] == "connection"
    return client, hello


async def receive_all(client: Client) -> list[dict]:
    got = []
    while not await client.nothing_more(0.5):
        got.append(await client.receive())
    return got


def test_every_message_carries_a_seq_that_grows_by_one_per_channel(token):
    async def scenario():
        alerts, hello = await connect("alerts", token)
        dashboard, dash_hello = await connect("dashboard", token)
        await database_sync_to_async(create_alerts)(3)
        got = await receive_all(alerts), await receive_all(dashboard)
        await alerts.close()
        await dashboard.close()
        return hello, dash_hello, got

    hello, dash_hello, (alerts, dashboard) = async_to_sync(scenario)()
    seqs = [m["seq"] for m in alerts]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
    assert [m["seq"] for m in dashboard] == [dashboard[0]["seq"] + i for i in range(3)]
    assert [m["data"]["title"] for m in alerts] == ["alert 0", "alert 1", "alert 2"]
    assert seqs[0] == hello["seq"] + 1  # the greeting tells where the channel stands
    assert dashboard[0]["seq"] == dash_hello["seq"] + 1


def test_resuming_with_since_delivers_the_100_missed_alerts_in_order_then_live(token):
    async def scenario():
        client, _ = await connect("alerts", token)
        await database_sync_to_async(create_alerts)(1, "before")
        last_seen = (await client.receive())["seq"]
        await client.close()
        await database_sync_to_async(create_alerts)(100, "missed")  # while disconnected
        client, hello = await connect("alerts", token, since=last_seen)
        replayed = [await client.receive() for _ in range(100)]
        await database_sync_to_async(create_alerts)(1, "live")
        rest = await receive_all(client)
        await client.close()
        return last_seen, hello, replayed, rest

    last_seen, hello, replayed, rest = async_to_sync(scenario)()
    assert hello["seq"] == last_seen + 100
    assert [m["seq"] for m in replayed] == list(range(last_seen + 1, last_seen + 101))
    assert [m["data"]["title"] for m in replayed] == [f"missed {i}" for i in range(100)]
    assert [(m["seq"], m["data"]["title"]) for m in rest] == [(last_seen + 101, "live 0")]


def test_no_gap_and_no_duplicate_at_the_seam_while_writes_continue(token):
    async def scenario():
        client, hello = await connect("alerts", token)
        await client.close()
        since = hello["seq"]
        writer = asyncio.ensure_future(database_sync_to_async(create_alerts)(60, "stream"))
        await asyncio.sleep(0.05)  # reconnect while the writer is mid-stream
        client, _ = await connect("alerts", token, since=since)
        await writer
        got = await receive_all(client)
        await client.close()
        return since, got

    since, got = async_to_sync(scenario)()
    assert [m["seq"] for m in got] == list(range(since + 1, since + 61))
    assert [m["data"]["title"] for m in got] == [f"stream {i}" for i in range(60)]


def test_a_history_shorter_than_the_gap_yields_resync_required(token, settings):
    settings.REALTIME_HISTORY_MAX = 10  # approximate trimming keeps at most a few hundred

    async def scenario():
        client, hello = await connect("alerts", token)
        await client.close()
        await database_sync_to_async(create_alerts)(400, "flood")
        client, resumed = await connect("alerts", token, since=hello["seq"])
        resync = await client.receive()
        await database_sync_to_async(create_alerts)(1, "live")
        rest = await receive_all(client)
        await client.close()
        return hello, resumed, resync, rest

    hello, resumed, resync, rest = async_to_sync(scenario)()
    assert resync["type"] == "resync_required"
    assert resync["channel"] == "alerts"
    assert resync["since"] == hello["seq"]
    assert resync["latest"] == resumed["seq"] == hello["seq"] + 400
    assert [m["data"]["title"] for m in rest] == ["live 0"]  # then the live stream


def test_history_lost_with_redis_data_yields_resync_and_seq_keeps_growing(token):
    async def scenario():
        client, _ = await connect("alerts", token)
        await database_sync_to_async(create_alerts)(2, "old")
        old = [await client.receive(), await client.receive()]
        await client.close()
        # What a Redis restart without persistence does to us: counters and history gone.
        from realtime import presence

        presence._client().delete(history.log_key("alerts"), history.seq_key("alerts"))
        await database_sync_to_async(create_alerts)(1, "new")
        client, _ = await connect("alerts", token, since=old[-1]["seq"])
        resync = await client.receive()
        await client.close()
        return old, resync

    old, resync = async_to_sync(scenario)()
    assert resync["type"] == "resync_required"
    assert resync["latest"] > old[-1]["seq"]  # seq only grows, even across the data loss


def test_since_ahead_of_the_channel_yields_resync_required(token):
    async def scenario():
        client, hello = await connect("events", token, since=10**15)
        resync = await client.receive()
        await client.close()
        return resync

    assert async_to_sync(scenario)()["type"] == "resync_required"


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", ""])
def test_invalid_since_is_refused_with_an_error(token, since):
    async def scenario():
        client = Client(f"/ws/alerts?token={token}&since={since}")
        await client.connect()
        error = await client.receive()
        code = await client.receive_close()
        return error, code

    error, code = async_to_sync(scenario)()
    assert error == {"type": "error", "message": "Invalid since: expected a non-negative integer"}
    assert code == 4000


def _record_without_publishing(channel: str, title: str) -> int:
    """What a message the hub never heard looks like: sequenced and recorded, not published
    (e.g. sent while this process's subscription was being re-established)."""
    import json as _json

    from realtime import presence
    from realtime.messages import envelope

    client = presence._client()
    seq = client.incr(history.seq_key(channel))
    body = _json.dumps(
        {
            "seq": seq,
            **envelope(
                "alert",
                "created",
                {
                    "alert_id": seq % 1000,
                    "title": title,
                    "severity": 3,
                    "category": "test",
                    "hostname": "WS-001",
                    "status": "new",
                },
            ),
        }
    )
    client.xadd(history.log_key(channel), {"t": 0, "m": body}, id=f"{seq}-0")
    return seq


def test_the_hub_fills_a_gap_from_the_history(token):
    async def scenario():
        client, _ = await connect("alerts", token)
        await database_sync_to_async(create_alerts)(1, "first")
        await client.receive()
        _record_without_publishing("alerts", "unheard")
        await database_sync_to_async(create_alerts)(1, "next")
        got = await receive_all(client)
        await client.close()
        return got

    got = async_to_sync(scenario)()
    assert [m["data"]["title"] for m in got] == ["unheard", "next 0"]
    assert got[1]["seq"] == got[0]["seq"] + 1


def test_a_gap_the_history_cannot_fill_tells_clients_to_resync(token):
    from realtime import presence

    async def scenario():
        client, _ = await connect("alerts", token)
        await database_sync_to_async(create_alerts)(1, "first")
        first = await client.receive()
        presence._client().incrby(history.seq_key("alerts"), 50)  # 50 messages lost for good
        await database_sync_to_async(create_alerts)(1, "after")
        got = await receive_all(client)
        await client.close()
        return first, got

    first, got = async_to_sync(scenario)()
    assert got[0]["type"] == "resync_required"
    assert got[0]["since"] == first["seq"]
    assert [m["data"]["title"] for m in got[1:]] == ["after 0"]
    assert got[1]["seq"] == first["seq"] + 51


def test_a_bulk_write_is_a_few_pubsub_messages_and_every_event_arrives_in_order(token):
    """300 events are 600 sends (events + dashboard): published as one newline-joined message
    per channel and script call, which the hub splits back into 300 frames with their seqs."""
    import json

    from events.services import create_events
    from realtime import presence
    from realtime.fanout import redis_channel

    items = [
        {"computer": f"WS-{i:03d}", "event_code": 4625, "severity": 3, "message": f"line\nno {i}"}
        for i in range(300)
    ]
    pubsub = presence._client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(redis_channel("events"))
    assert pubsub.get_message(timeout=5) is None  # the subscription is confirmed

    async def scenario():
        client, hello = await connect("events", token)
        await database_sync_to_async(create_events)(items)
        got = [await client.receive() for _ in range(300)]
        assert await client.nothing_more(0.5)
        await client.close()
        return hello, got

    hello, got = async_to_sync(scenario)()
    published = []
    while (reply := pubsub.get_message(timeout=1)) is not None:
        published.append(history.split(reply["data"]))
    pubsub.close()
    assert 1 <= len(published) <= 3  # chunks of 200 sends: at most 3 script calls
    texts = [text for batch in published for text in batch]
    assert [json.loads(text)["seq"] for text in texts] == [m["seq"] for m in got]
    assert [m["seq"] for m in got] == list(range(hello["seq"] + 1, hello["seq"] + 301))
    assert [m["data"]["message"] for m in got] == [f"line\nno {i}" for i in range(300)]
