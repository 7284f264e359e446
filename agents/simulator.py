"""Simulated Windows agents that talk to a running server over the real HTTP API.

Used by `manage.py simulate_agents` (demos, load tests) and `bench/agent_ingest.py`. Every agent
enrolls with the enrollment key, heart-beats, and ships Windows Security records in the flat
evtx JSON shape, with increasing EventRecordIDs, retrying a failed batch as is (the server's
record-id de-duplication makes the retry safe) — exactly the contract of agent/siem_agent.py.

Scenarios:
- `office`          everyday noise: interactive and network logons, logoffs, special privileges,
                    process creation, now and then a mistyped password (4625).
- `brute_force`     one external address hammers one account on one host with 4625s (NTLM,
                    logon type 3), then succeeds (4624).
- `password_spray`  one address tries one password against many accounts across hosts: 4625s
                    and Kerberos pre-authentication failures (4771).
- `dying_agent`     one agent stops heart-beating and shipping a third of the way through, as a
                    crashed or unplugged host does; the server's watchdog takes it offline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

SCENARIOS = ("office", "brute_force", "password_spray", "dying_agent")
USERS = [f"user{n:03d}" for n in range(1, 121)] + ["administrator", "svc_backup", "helpdesk"]
PROCESSES = [
    r"C:\Windows\System32\svchost.exe",
    r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Windows\explorer.exe",
    r"C:\Windows\System32\taskhostw.exe",
]
ATTACKER_IP = "185.220.101.47"
SPRAY_IP = "45.155.205.99"
AUDIT_SUCCESS = "0x8020000000000000"
AUDIT_FAILURE = "0x8010000000000000"


def require_loopback(url: str) -> str:
    """The base URL, if it points at this machine; ValueError otherwise (simulated load must
    never be aimed at someone else's server)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    host = parts.hostname
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise ValueError(f"{host} is not a loopback address")
        except ValueError as exc:
            raise ValueError(
                f"refusing {url!r}: the simulator only talks to this machine "
                "(localhost, 127.0.0.0/8, ::1)"
            ) from exc
    return url.rstrip("/")


@dataclass
class Stats:
    registered: int = 0
    heartbeats: int = 0
    batches: int = 0
    sent: int = 0
    created: int = 0
    duplicates: int = 0
    retries: int = 0
    errors: int = 0
    dead: int = 0
    last_error: str = ""
    latencies: list[float] = field(default_factory=list)


class SimulatedAgent:
    def __init__(self, index: int, hostname: str, rng: random.Random, domain: str = "CORP"):
        self.index = index
        self.hostname = hostname
        self.rng = rng
        self.domain = domain
        self.token = ""
        self.agent_id = ""
        # Record ids keep growing across runs, so a re-enrolled simulated host (same agent id on
        # the server) never has new events taken for retries of old ones.
        self.next_record_id = time.time_ns() // 1000
        self.alive = True
        self.brute_force_sent = 0
        # The workstation's own user: the one who now and then mistypes a password. (Failures
        # for many accounts from one address would look like a spray, and rightly alert.)
        self.user = USERS[(index - 1) % 40]
        self.last_mistype = -1e9

    # --- Windows records --------------------------------------------------------------------
    def record(self, code: int, data: dict[str, Any], *, failure: bool = False) -> dict[str, Any]:
        self.next_record_id += 1
        now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        return {
            "EventID": code,
            "Computer": self.hostname,
            "Channel": "Security",
            "Provider_Name": "Microsoft-Windows-Security-Auditing",
            "TimeCreated": now,
            "EventRecordID": self.next_record_id,
            "Level": 0,
            "Keywords": AUDIT_FAILURE if failure else AUDIT_SUCCESS,
            **data,
        }

    def logon(self, user: str, logon_type: int, ip: str = "-") -> dict[str, Any]:
        return self.record(
            4624,
            {
                "SubjectUserName": f"{self.hostname}$",
                "TargetUserName": user,
                "TargetDomainName": self.domain,
                "LogonType": logon_type,
                "LogonProcessName": "User32 " if logon_type == 2 else "NtLmSsp ",
                "AuthenticationPackageName": "Negotiate" if logon_type == 2 else "NTLM",
                "WorkstationName": self.hostname,
                "IpAddress": ip,
                "IpPort": "-" if ip == "-" else str(self.rng.randint(49152, 65535)),
            },
        )

    def failed_logon(self, user: str, ip: str, logon_type: int = 3) -> dict[str, Any]:
        return self.record(
            4625,
            {
                "SubjectUserName": "-",
                "TargetUserName": user,
                "TargetDomainName": self.domain,
                "Status": "0xc000006d",
                "FailureReason": "%%2313",
                "SubStatus": "0xc000006a",
                "LogonType": logon_type,
                "LogonProcessName": "NtLmSsp ",
                "AuthenticationPackageName": "NTLM",
                "WorkstationName": "-",
                "IpAddress": ip,
                "IpPort": str(self.rng.randint(49152, 65535)),
            },
            failure=True,
        )

    def office_event(self) -> dict[str, Any]:
        user = self.rng.choice(USERS[:40])
        roll = self.rng.random()
        if roll < 0.35:
            return self.logon(user, self.rng.choice([2, 3, 7, 11]), f"10.10.{self.index % 250}.20")
        if roll < 0.55:
            return self.record(
                4634,
                {"TargetUserName": user, "TargetDomainName": self.domain, "LogonType": 3},
            )
        if roll < 0.70:
            return self.record(
                4672,
                {"SubjectUserName": user, "SubjectDomainName": self.domain,
                 "PrivilegeList": "SeSecurityPrivilege\r\n\t\t\tSeBackupPrivilege"},
            )  # fmt: skip
        if roll < 0.97:
            process = self.rng.choice(PROCESSES)
            return self.record(
                4688,
                {"SubjectUserName": user, "SubjectDomainName": self.domain,
                 "NewProcessName": process, "CommandLine": f'"{process}"',
                 "ParentProcessName": r"C:\Windows\explorer.exe"},
            )  # fmt: skip
        if time.monotonic() - self.last_mistype < 120:
            # A person mistypes now and then, not at machine speed: at most once in 2 minutes,
            # whatever the rate (a burst of 4625s is the brute-force scenario's job).
            return self.logon(self.user, 2)
        self.last_mistype = time.monotonic()
        return self.failed_logon(self.user, f"10.10.{self.index % 250}.20", logon_type=2)

    def brute_force_events(self, count: int) -> list[dict[str, Any]]:
        events = [self.failed_logon("administrator", ATTACKER_IP) for _ in range(count)]
        self.brute_force_sent += count
        if self.brute_force_sent >= 60 and self.rng.random() < 0.1:
            events.append(self.logon("administrator", 3, ATTACKER_IP))  # the guess that worked
            self.brute_force_sent = 0
        return events

    def spray_events(self, count: int) -> list[dict[str, Any]]:
        events = []
        for _ in range(count):
            user = self.rng.choice(USERS)
            if self.rng.random() < 0.5:
                events.append(self.failed_logon(user, SPRAY_IP))
            else:
                events.append(
                    self.record(
                        4771,
                        {
                            "TargetUserName": user,
                            "ServiceName": "krbtgt",
                            "Status": "0x18",
                            "PreAuthType": "2",
                            "IpAddress": f"::ffff:{SPRAY_IP}",
                            "IpPort": "50123",
                        },
                        failure=True,
                    )  # fmt: skip
                )
        return events


@dataclass
class Plan:
    url: str
    enrollment_key: str
    agents: int = 10
    rate: float = 50.0  # events per second, all agents together; 0 = as fast as possible
    duration: float = 60.0
    batch_size: int = 100
    heartbeat_interval: float = 10.0
    flush_interval: float = 1.0  # seconds an agent collects events before shipping them
    scenarios: tuple[str, ...] = ("office",)
    prefix: str = "SIM"
    seed: int | None = None
    concurrency_per_agent: int = 1
    timeout: float = 30.0


class Simulation:
    """Runs a Plan: enrolls the agents, then ships and heart-beats until the duration ends."""

    def __init__(
        self,
        plan: Plan,
        on_progress: Callable[[Stats, float], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.plan = plan
        self.transport = transport  # tests pass httpx.ASGITransport(app=...) here
        self.plan.url = require_loopback(plan.url)
        unknown = set(plan.scenarios) - set(SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        self.stats = Stats()
        self.on_progress = on_progress
        rng = random.Random(plan.seed)
        self.agents = [
            SimulatedAgent(n, f"{plan.prefix}-{n:03d}", random.Random(rng.random()))
            for n in range(1, plan.agents + 1)
        ]
        self.started = 0.0

    async def run(self) -> Stats:
        limits = httpx.Limits(max_connections=self.plan.agents * 2 + 4)
        async with httpx.AsyncClient(
            base_url=self.plan.url,
            timeout=self.plan.timeout,
            limits=limits,
            transport=self.transport,
        ) as client:
            await asyncio.gather(*(self._enroll(client, agent) for agent in self.agents))
            enrolled = [agent for agent in self.agents if agent.token]
            if not enrolled:
                raise RuntimeError(f"no agent could enroll: {self.stats.last_error}")
            self.started = time.monotonic()
            tasks = [asyncio.create_task(self._agent_loop(client, a)) for a in enrolled]
            tasks += [asyncio.create_task(self._heartbeats(client, a)) for a in enrolled]
            progress = asyncio.create_task(self._progress())
            await asyncio.gather(*tasks)
            progress.cancel()
        if self.on_progress:
            self.on_progress(self.stats, time.monotonic() - self.started)
        return self.stats

    # --- per agent ----------------------------------------------------------------------------
    async def _enroll(self, client: httpx.AsyncClient, agent: SimulatedAgent) -> None:
        body = {
            "enrollment_key": self.plan.enrollment_key,
            "hostname": agent.hostname,
            "os": "Windows 10 Enterprise (simulated)",
            "version": "sim-1.0",
        }
        try:
            response = await client.post("/api/v1/agents/register/", json=body)
        except httpx.HTTPError as exc:
            self._error(f"enroll {agent.hostname}: {exc!r}")
            return
        if response.status_code != 201:
            self._error(f"enroll {agent.hostname}: {response.status_code} {response.text[:200]}")
            return
        data = response.json()
        agent.token, agent.agent_id = data["agent_token"], data["agent_id"]
        self.stats.registered += 1

    def _headers(self, agent: SimulatedAgent) -> dict[str, str]:
        return {"Authorization": f"Agent {agent.token}"}

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _dies_at(self, agent: SimulatedAgent) -> float | None:
        if "dying_agent" in self.plan.scenarios and agent.index == len(self.agents):
            return self.plan.duration / 3
        return None

    async def _heartbeats(self, client: httpx.AsyncClient, agent: SimulatedAgent) -> None:
        dies_at = self._dies_at(agent)
        while self._elapsed() < self.plan.duration:
            if dies_at is not None and self._elapsed() >= dies_at:
                return
            try:
                response = await client.post(
                    "/api/v1/agents/heartbeat/", json={}, headers=self._headers(agent)
                )
                if response.status_code == 200:
                    self.stats.heartbeats += 1
                else:
                    self._error(f"heartbeat {agent.hostname}: {response.status_code}")
            except httpx.HTTPError as exc:
                self._error(f"heartbeat {agent.hostname}: {exc!r}")
            await asyncio.sleep(self.plan.heartbeat_interval)

    def _generate(self, agent: SimulatedAgent, count: int) -> list[dict[str, Any]]:
        scenarios = self.plan.scenarios
        events: list[dict[str, Any]] = []
        # The first agent is the brute-force victim, the second hosts the spray's DC.
        if "brute_force" in scenarios and agent.index == 1:
            events += agent.brute_force_events(max(1, count // 4))
        if "password_spray" in scenarios and agent.index == min(2, len(self.agents)):
            events += agent.spray_events(max(1, count // 4))
        while len(events) < count:
            events.append(agent.office_event())
        return events[: max(count, 1)]

    async def _agent_loop(self, client: httpx.AsyncClient, agent: SimulatedAgent) -> None:
        """Ship what the rate owes, once a second or as soon as a full batch is owed."""
        plan = self.plan
        dies_at = self._dies_at(agent)
        per_agent = plan.rate / len(self.agents) if plan.rate > 0 else 0.0
        owed = 0.0
        last = last_ship = time.monotonic()
        while self._elapsed() < plan.duration:
            if dies_at is not None and self._elapsed() >= dies_at:
                agent.alive = False
                self.stats.dead += 1
                return
            count = plan.batch_size
            if per_agent:
                now = time.monotonic()
                owed += (now - last) * per_agent
                last = now
                if owed < plan.batch_size and now - last_ship < plan.flush_interval:
                    wait = min(plan.flush_interval - (now - last_ship), 1.0)
                    await asyncio.sleep(max(wait, 0.01))
                    continue
                last_ship = now
                count = min(int(owed), plan.batch_size)
                if count < 1:
                    continue
                owed -= count
            await self._ship(client, agent, self._generate(agent, count))

    async def _ship(self, client: httpx.AsyncClient, agent, events: list[dict]) -> None:
        """Send one batch; on a network error or 5xx, send the same batch again (idempotent).
        A busy server (429/503 with Retry-After) is waited for as long as it asks, without
        counting as a failed attempt: that is backpressure, and the batch must not be lost."""
        attempt = 0
        while attempt < 5:
            began = time.monotonic()
            try:
                response = await client.post(
                    "/api/v1/agents/events/", json=events, headers=self._headers(agent)
                )
            except httpx.HTTPError as exc:
                self._error(f"events {agent.hostname}: {exc!r}")
            else:
                if response.status_code in (200, 201):
                    body = response.json()
                    self.stats.batches += 1
                    self.stats.sent += len(events)
                    self.stats.created += body["created"]
                    self.stats.duplicates += body["duplicates"]
                    self.stats.latencies.append(time.monotonic() - began)
                    return
                if response.status_code in (429, 503) and "Retry-After" in response.headers:
                    # Backpressure, not a failure: wait as told and send the same batch again.
                    self.stats.retries += 1
                    await asyncio.sleep(_retry_after(response.headers["Retry-After"]))
                    continue
                self._error(
                    f"events {agent.hostname}: {response.status_code} {response.text[:200]}"
                )
                if response.status_code < 500:
                    return  # the server refused the batch: retrying would not change that
            self.stats.retries += 1
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
            attempt += 1

    def _error(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.on_progress:
                self.on_progress(self.stats, self._elapsed())


def _retry_after(value: str) -> float:
    try:
        return min(max(float(value), 0.1), 30.0)
    except ValueError:
        return 1.0
