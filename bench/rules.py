"""Rule management benchmark: what exceptions cost the engine, what the rules API costs.

1. `match` (Engine.evaluate on the realistic mix of bench/detection.py, every loadable SigmaHQ
   Windows rule + the built-in rules) without exceptions and with one exception on each of the
   `--excepted` rules that match most often (a condition that never holds: the worst case, every
   match of those rules tests it). Rounds alternate; CPU-time rates, medians.
2. GET /api/v1/rules/ (a page of 50 and of 500, ordered by hits, filtered by technique) and
   /coverage/ through DRF's test client, with `--hit-rows` RuleHit rows spread over the rules
   and the last 7 days (the worst case: every row inside the window), and their parts.

    .venv/bin/python bench/rules.py --events 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection as base  # noqa: E402  (bench/detection.py: setup, records, run_match)


def cpu_rate(run, count: int) -> float:
    started = time.process_time()
    run()
    return count / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="0: only the list")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--excepted", type=int, default=50, help="rules given an exception")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hit-rows", type=int, default=100_000)
    parser.add_argument("--sigma-dir", default=str(base.DATA / "sigma-full/rules/windows"))
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    print(f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        base.setup_django(Path(tmp) / "bench.sqlite3", args.sigma_dir)
        from django.conf import settings
        from django.contrib.auth.models import Group, User
        from django.utils import timezone
        from rest_framework.test import APIClient

        from accounts.roles import ADMIN
        from alerts.detection import rules as catalog
        from alerts.detection.engine import get_engine
        from alerts.detection.hits import ALL_TIME, hits_by_rule
        from alerts.detection.replay import unsaved_events
        from alerts.detection.windows import default_client
        from alerts.models import RuleException, RuleHit

        engine = get_engine()
        events = unsaved_events(base.records(args.events))
        try:
            fired = engine.evaluate(events)[1]
            top = [rule_id for rule_id, _ in fired.most_common(args.excepted)]
            share = sum(fired[r] for r in top) / max(1, sum(fired.values()))
            print(
                f"{len(engine.sigma.rules)} Sigma rules; {len(events)} events; the {len(top)} "
                f"excepted rules make {share:.0%} of {sum(fired.values())} matches"
            )
            rates: dict[str, list[float]] = {"no exceptions": [], "with exceptions": []}
            for _ in range(args.rounds if events else 0):
                for label in rates:
                    RuleException.objects.all().delete()
                    if label == "with exceptions":
                        RuleException.objects.bulk_create(
                            RuleException(rule_id=r, conditions={"SubjectUserName": ["nobody"]})
                            for r in top
                        )
                    engine.invalidate()
                    assert len(engine.config().exceptions) == (len(top) if "with" in label else 0)
                    rates[label].append(
                        cpu_rate(lambda: base.run_match(engine, events, args.batch), len(events))
                    )
            for label, values in rates.items():
                if values:
                    print(
                        f"match, {label:16} {statistics.median(values):9,.0f} events/CPU-s {values}"
                    )
        finally:
            client = default_client()
            keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])

        rules = catalog.all_rules(with_hits=False)
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        RuleHit.objects.bulk_create(
            (
                RuleHit(
                    rule_id=rules[i % len(rules)]["id"],
                    hour=now - timedelta(hours=(i // len(rules)) % 168),
                    alerts=1,
                    events=3,
                    last_hit=now,
                )
                for i in range(args.hit_rows)
            ),
            batch_size=5000,
            ignore_conflicts=True,
        )
        RuleHit.objects.bulk_create(
            RuleHit(rule_id=rule["id"], hour=ALL_TIME, alerts=1, events=1, last_hit=now)
            for rule in rules
        )
        print(f"{len(rules)} rules, {RuleHit.objects.count()} RuleHit rows")
        user = User.objects.create(username="bench", is_superuser=True)
        user.groups.add(Group.objects.get_or_create(name=ADMIN)[0])
        client = APIClient()
        client.force_authenticate(user)

        def api(path: str) -> None:
            response = client.get(path, HTTP_HOST="localhost")
            assert response.status_code == 200, response.content[:300]

        for label, run in (
            ("API page of 50", lambda: api("/api/v1/rules/")),
            ("API page of 500", lambda: api("/api/v1/rules/?page_size=500")),
            ("API by hits", lambda: api("/api/v1/rules/?ordering=-alerts_24h")),
            ("API technique", lambda: api("/api/v1/rules/?technique=T1059")),
            ("API coverage", lambda: api("/api/v1/rules/coverage/")),
            ("hits only", hits_by_rule),
            ("rules only", lambda: catalog.all_rules(with_hits=False)),
            ("coverage", catalog.coverage),
        ):
            times = []
            for _ in range(5):
                started = time.perf_counter()
                run()
                times.append(time.perf_counter() - started)
            print(f"{label:18} median {statistics.median(times) * 1000:7.1f} ms wall of 5")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
