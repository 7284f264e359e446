"""`manage.py simulate_agents`: N simulated Windows agents against a running server (loopback).

They enroll through POST /api/v1/agents/register/, heart-beat, and ship Security records at the
given rate through POST /api/v1/agents/events/ — the same HTTP contract as agent/siem_agent.py —
for demos and load tests. See agents/simulator.py for the scenarios.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.simulator import SCENARIOS, Plan, Simulation, Stats


class Command(BaseCommand):
    help = (
        "Simulate N Windows agents against a running SIEM server on this machine: they enroll "
        "with the enrollment key, heart-beat and ship Security events at --rate events/s for "
        "--duration seconds. Scenarios: office (everyday noise), brute_force (many 4625s for "
        "one account from one address, then a success), password_spray (one address, many "
        "accounts, 4625/4771), dying_agent (one agent goes silent a third of the way through)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="server base URL (loopback only)"
        )
        parser.add_argument(
            "--enrollment-key",
            default=os.environ.get("AGENT_ENROLLMENT_KEY", ""),
            help="the server's AGENT_ENROLLMENT_KEY (default: from the environment)",
        )
        parser.add_argument("--agents", type=int, default=10, help="number of agents (10)")
        parser.add_argument(
            "--rate",
            type=float,
            default=50.0,
            help="events per second, all agents together (50); 0 = as fast as the server takes",
        )
        parser.add_argument("--duration", type=float, default=60.0, help="seconds to run (60)")
        parser.add_argument("--batch-size", type=int, default=100, help="max events per batch")
        parser.add_argument(
            "--heartbeat-interval", type=float, default=10.0, help="seconds between heartbeats"
        )
        parser.add_argument(
            "--scenario",
            action="append",
            choices=SCENARIOS,
            help="add a scenario (repeatable; default: office). Attack scenarios come on top "
            "of office noise.",
        )
        parser.add_argument("--prefix", default="SIM", help="hostname prefix (SIM → SIM-001…)")
        parser.add_argument("--seed", type=int, help="random seed, for repeatable runs")

    def handle(self, *args, **options) -> None:
        # httpx logs every request at INFO: thousands of lines that would drown the progress.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if not options["enrollment_key"]:
            raise CommandError("--enrollment-key is required (or AGENT_ENROLLMENT_KEY set)")
        for name in ("agents", "batch_size"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if options["duration"] <= 0 or options["rate"] < 0 or options["heartbeat_interval"] <= 0:
            raise CommandError("--duration and --heartbeat-interval must be > 0, --rate >= 0")
        scenarios = tuple(options["scenario"] or ["office"])
        if "office" not in scenarios:
            scenarios = ("office", *scenarios)
        plan = Plan(
            url=options["url"],
            enrollment_key=options["enrollment_key"],
            agents=options["agents"],
            rate=options["rate"],
            duration=options["duration"],
            batch_size=options["batch_size"],
            heartbeat_interval=options["heartbeat_interval"],
            scenarios=scenarios,
            prefix=options["prefix"],
            seed=options["seed"],
        )
        try:
            simulation = Simulation(plan, on_progress=self._progress)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{plan.agents} agents → {simulation.plan.url}, {plan.rate or 'max'} events/s, "
            f"{plan.duration:g} s, scenarios: {', '.join(scenarios)}"
        )
        try:
            stats = asyncio.run(simulation.run())
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            self.stdout.write("\nInterrupted.")
            return
        self._summary(stats, plan.duration)

    def _progress(self, stats: Stats, elapsed: float) -> None:
        line = (
            f"[{elapsed:6.1f}s] agents {stats.registered - stats.dead}/{stats.registered} alive, "
            f"sent {stats.sent}, stored {stats.created}, duplicates {stats.duplicates}, "
            f"heartbeats {stats.heartbeats}, retries {stats.retries}, errors {stats.errors}, "
            f"{stats.sent / elapsed if elapsed else 0:.0f} ev/s"
        )
        if sys.stdout.isatty():
            self.stdout.write("\r" + line, ending="")
        elif int(elapsed) % 5 == 0:
            self.stdout.write(line)

    def _summary(self, stats: Stats, duration: float) -> None:
        latencies = sorted(stats.latencies)
        p95 = latencies[int(len(latencies) * 0.95)] * 1000 if latencies else 0.0
        self.stdout.write("")
        self.stdout.write(
            f"Done: {stats.registered} agents enrolled ({stats.dead} died), {stats.batches} "
            f"batches, {stats.sent} events sent, {stats.created} stored, {stats.duplicates} "
            f"duplicates, {stats.retries} retries, {stats.errors} errors; "
            f"{stats.sent / duration:.0f} events/s; batch latency p95 {p95:.0f} ms"
        )
        if stats.last_error:
            self.stderr.write(f"Last error: {stats.last_error}")
