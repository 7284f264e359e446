"""Scale-out: two "nodes" — separate daphne process groups, each with its own data directory,
port and metrics directory, as two machines would have — against one PostgreSQL and one Redis.

A client on node A must see, live, the write a client makes through node B, with a token that
node B issued (sessions live in the shared database); each node answers /readyz, and node B's
/metrics counts the event it stored.

Users (password `Passw0rd!x`): `admin` (superuser, group admin), `analyst` (group analyst).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PASSWORD
from tests.ws_helpers import check
from tests.ws_servers import Cluster

pytestmark = pytest.mark.e2e

PG = os.environ.get("SCALE_OUT_PG", "postgres://postgres@127.0.0.1:5432")


@pytest.fixture(scope="module")
def database():
    """A database of its own on the local PostgreSQL, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"scaleout_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, database):
    from tests.browser_support import free_port

    prefix = f"scaleout-{uuid.uuid4().hex[:8]}"
    built = []
    for label in ("a", "b"):
        workdir = tmp_path_factory.mktemp(f"node-{label}")
        metrics_dir = workdir / "prometheus"
        metrics_dir.mkdir()
        port = free_port()
        node = Cluster(
            workdir,
            [port],
            {
                "DATABASE_URL": database,
                "REDIS_KEY_PREFIX": prefix,  # one Redis namespace: one deployment
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            },
        )
        if label == "a":
            node.prepare(PASSWORD)  # migrations and users, once, in the shared database
        node.start_all()  # before the next free_port(), so the ports differ
        built.append(node)
    yield built
    for node in built:
        node.stop_all()


@pytest.mark.timeout(900)  # several server processes start on a loaded machine
def test_a_client_on_node_a_sees_a_write_made_on_node_b(nodes):
    node_a, node_b = nodes
    port_a, port_b = node_a.ports[0], node_b.ports[0]
    assert node_a.env["SIEM_DATA_DIR"] != node_b.env["SIEM_DATA_DIR"]

    login = httpx.post(
        f"http://127.0.0.1:{port_b}/api/v1/auth/login",
        json={"username": "analyst", "password": PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]  # issued by node B, used on node A
    marker = f"scale-out {uuid.uuid4().hex[:8]}"

    async def scenario() -> dict:
        url = f"ws://127.0.0.1:{port_a}/ws/events?token={token}"
        async with websockets.connect(url) as ws:
            greeting = check(json.loads(await ws.recv()))
            assert greeting["type"] == "connection" and greeting["channel"] == "events"
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(
                    f"http://127.0.0.1:{port_b}/api/v1/events/",
                    json={
                        "computer": "WS-SCALE",
                        "event_code": 4625,
                        "severity": 3,
                        "source_type": "Windows Security",
                        "message": marker,
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 201, response.text
            while True:
                message = check(json.loads(await asyncio.wait_for(ws.recv(), 20)))
                if message.get("type") == "event" and message["data"]["message"] == marker:
                    return message

    message = asyncio.run(scenario())
    assert message["action"] == "created"
    assert message["data"]["computer"] == "WS-SCALE"

    for port in (port_a, port_b):
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
        assert ready.status_code == 200, ready.text
    metrics = httpx.get(f"http://127.0.0.1:{port_b}/metrics", timeout=30)
    assert metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    ingested = [s for s in families["siem_events_ingested"].samples if s.name.endswith("_total")]
    assert sum(s.value for s in ingested) >= 1
