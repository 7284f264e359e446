"""`manage.py detect --replay FILE`: which rules fire on a recorded log, and how often.

A dry run by default: the file's events are evaluated by the engine (all enabled built-in and
Sigma rules, with their thresholds and windows) without storing events or alerts; window state
goes to a throw-away Redis namespace. With --store the file is ingested for real (events stored,
alerts raised and broadcast), as `import_events` would.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from alerts.detection.engine import Engine, get_engine
from alerts.detection.replay import normalized, unsaved_events


class Command(BaseCommand):
    help = "Replay a JSON Lines or EVTX file through detection and print the rules that fire."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--replay", action="append", required=True, metavar="FILE")
        parser.add_argument("--store", action="store_true", help="Store events and raise alerts")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, replay, store=False, batch_size=500, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        items = []
        for path in replay:
            try:
                items.extend(normalized(path))
            except (OSError, ValueError) as exc:
                raise CommandError(f"{path}: {exc}") from None
        engine = get_engine()
        if store:
            self._store(items, batch_size)
            return
        self._dry_run(engine, items, batch_size)

    def _dry_run(self, engine: Engine, items: list, batch_size: int) -> None:
        prefix = settings.REDIS_KEY_PREFIX
        settings.REDIS_KEY_PREFIX = f"{prefix}:replay-{uuid.uuid4().hex[:12]}"
        fired: Counter = Counter()
        keys: dict[str, set] = defaultdict(set)
        hosts: dict[str, set] = defaultdict(set)
        titles: dict[str, str] = {}
        folded: dict[str, set] = defaultdict(set)  # Sigma rule: built-in alerts it joined
        try:
            events = unsaved_events(items)
            for start in range(0, len(events), batch_size):
                findings, counts = engine.evaluate(events[start : start + batch_size])
                fired.update(counts)
                for finding in findings:
                    keys[finding.rule_id].add(finding.dedup_key)
                    hosts[finding.rule_id].add(finding.hostname)
                    titles[finding.rule_id] = finding.title
                    for entry in finding.also:
                        folded[entry["id"]].add(finding.rule_id)
                        titles.setdefault(entry["id"], entry["name"])
        except redis.RedisError as exc:
            raise CommandError(f"Redis is needed for the windows: {exc}") from None
        finally:
            self._forget(settings.REDIS_KEY_PREFIX)
            settings.REDIS_KEY_PREFIX = prefix
        self.stdout.write(f"{len(items)} event(s) replayed (dry run: nothing stored)")
        self.stdout.write(f"{'matches':>8} {'alerts':>6}  rule")
        for rule_id, count in fired.most_common():
            also = f"  also on: {', '.join(sorted(folded[rule_id]))}" if folded[rule_id] else ""
            self.stdout.write(
                f"{count:8} {len(keys[rule_id]):6}  {rule_id}  {titles.get(rule_id, '')}"
                f"  hosts: {', '.join(sorted(hosts[rule_id]))}{also}"
            )
        if not fired:
            self.stdout.write("no rule fired")
        else:
            self.stdout.write(f"{sum(len(k) for k in keys.values())} alert(s) in all")

    @staticmethod
    def _forget(prefix: str) -> None:
        from alerts.detection.windows import default_client

        client = default_client()
        keys = list(client.scan_iter(f"{prefix}:detect:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])

    def _store(self, items: list, batch_size: int) -> None:
        from alerts.models import Alert
        from events.services import create_events

        def totals() -> Counter:
            counts: Counter = Counter()
            for rule_id, count in Alert.objects.exclude(rule_id="").values_list(
                "rule_id", "occurrence_count"
            ):
                counts[rule_id] += count
            return counts

        before = totals()
        for start in range(0, len(items), batch_size):
            create_events(items[start : start + batch_size])
        after = totals()
        self.stdout.write(f"{len(items)} event(s) stored")
        for rule_id, count in (after - before).most_common():
            self.stdout.write(f"{count:8}  {rule_id}")
