"""The agent simulator, driven through our real ASGI application over HTTP (in-process).

The simulated agents enroll, heart-beat and ship exactly as a real agent does; the server side
is the real Django stack and test database, reached through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from django.core.management import CommandError, call_command

from agents.models import Agent
from agents.simulator import ATTACKER_IP, SPRAY_IP, Plan, Simulation, require_loopback
from events.models import SecurityEvent

KEY = "simulator-key-123456"


class OneAtATime(httpx.AsyncBaseTransport):
    """Our ASGI app, one request at a time: the in-memory SQLite test database cannot take
    concurrent writers (daphne on a file or PostgreSQL database can; see bench/)."""

    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner = inner
        self.locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lock = self.locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response


@pytest.fixture
def asgi_transport(settings):
    from django.core.asgi import get_asgi_application

    settings.AGENT_ENROLLMENT_KEY = KEY
    app = get_asgi_application()
    return OneAtATime(httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)))


@pytest.mark.django_db(transaction=True)
def test_simulated_agents_enroll_heartbeat_and_ship_the_attack_scenarios(asgi_transport):
    plan = Plan(
        url="http://127.0.0.1:8000",
        enrollment_key=KEY,
        agents=3,
        rate=0,  # as fast as the server takes
        duration=1.5,
        batch_size=20,
        heartbeat_interval=0.5,
        scenarios=("office", "brute_force", "password_spray", "dying_agent"),
        seed=7,
    )
    stats = asyncio.run(Simulation(plan, transport=asgi_transport).run())
    assert stats.registered == 3 and stats.errors == 0, stats.last_error
    assert stats.dead == 1 and stats.heartbeats >= 3
    assert stats.created == stats.sent == SecurityEvent.objects.count() > 0
    assert set(Agent.objects.values_list("hostname", flat=True)) == {
        "SIM-001",
        "SIM-002",
        "SIM-003",
    }
    brute = SecurityEvent.objects.filter(computer="SIM-001", event_code=4625, source_ip=ATTACKER_IP)
    assert brute.exists() and brute.first().user_name == "administrator"
    spray = SecurityEvent.objects.filter(computer="SIM-002", source_ip__endswith=SPRAY_IP)
    assert spray.values("user_name").distinct().count() > 3
    # Every event came with its record id: a retried batch could not be stored twice.
    assert not SecurityEvent.objects.filter(agent_record_id__isnull=True).exists()


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://example.com", "ftp://127.0.0.1"])
def test_the_simulator_refuses_anything_but_this_machine(url):
    with pytest.raises(ValueError):
        require_loopback(url)


@pytest.mark.parametrize("url", ["http://localhost:8000", "http://127.0.0.2:1", "http://[::1]:80/"])
def test_the_simulator_accepts_loopback_addresses(url):
    assert require_loopback(url) == url.rstrip("/")


def test_the_command_refuses_a_remote_url_and_a_missing_key():
    with pytest.raises(CommandError, match="only talks to this machine"):
        call_command(
            "simulate_agents", "--url", "http://192.168.1.10:8000", "--enrollment-key", "k",
            stdout=io.StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match="enrollment-key"):
        call_command("simulate_agents", "--enrollment-key", "", stdout=io.StringIO())


def simulate(transport, *scenarios: str, seed: int) -> None:
    plan = Plan(
        url="http://127.0.0.1:8000",
        enrollment_key=KEY,
        agents=3,
        rate=0,
        duration=1.5,
        batch_size=20,
        scenarios=("office", *scenarios),
        prefix=f"S{seed}",
        seed=seed,
    )
    stats = asyncio.run(Simulation(plan, transport=transport).run())
    assert stats.errors == 0, stats.last_error


@pytest.mark.django_db(transaction=True)
def test_office_noise_alone_raises_no_alert_and_the_attacks_do(asgi_transport):
    from alerts.models import Alert

    simulate(asgi_transport, seed=11)
    assert SecurityEvent.objects.count() > 100
    assert list(Alert.objects.values_list("category", "hostname")) == []
    simulate(asgi_transport, "brute_force", "password_spray", seed=12)
    fired = set(Alert.objects.values_list("category", "hostname"))
    assert ("brute_force", "S12-001") in fired
    assert ("password_spray", "S12-002") in fired
    assert {host for _category, host in fired} <= {"S12-001", "S12-002"}
