"""The complete SigmaHQ Windows ruleset (../shared/data/sigma-full, 2,407 rules) on real data.

- every rule either loads or is listed refused with its reason, and at least 98 % load;
- the literal pre-filter never changes a match: on every shared real record, the rules the
  dispatch offers and that match are exactly the rules of the event's log that match;
- per rule, the records matched on EVTX-ATTACK-SAMPLES equal those pySigma's SQLite backend
  returns with the Windows/Sysmon logsource pipeline applied
  (`alerts.detection.logsource.reference_pipeline`), on the records normalized the way the
  engine reads them (as `tests/test_detection_sigma.py` does for the 21 picked rules).

The rules are loaded once for the module (~20 s of CPU; minutes on a loaded machine, hence the
longer timeout).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from alerts.detection.dispatch import Dispatch
from alerts.detection.fields import event_view
from alerts.detection.logsource import reference_pipeline
from alerts.detection.replay import unsaved_events
from alerts.detection.sigma import SKIPPED, RuleFilter, load_rules, refusal_reason
from events.normalize import normalize_record
from tests.detection_helpers import DATA
from tests.test_detection_sigma import run, sqlite_logs

pytestmark = pytest.mark.timeout(1800)

FULL = DATA / "sigma-full" / "rules" / "windows"
SAMPLES = sorted((DATA / "windows" / "attack-samples").glob("*.jsonl"))
ALL_RECORDS = sorted((DATA / "windows").glob("*/*.jsonl"))


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(FULL)


def read(paths) -> list[dict]:
    return [json.loads(line) for path in paths for line in path.open() if line.strip()]


def engine_matches(ruleset, records: list[dict]) -> dict[str, set[int]]:
    """rule id → indexes of the records it matches, through the dispatch and pre-filter."""
    dispatch = Dispatch(ruleset.rules)
    found: dict[str, set[int]] = defaultdict(set)
    for index, event in enumerate(unsaved_events([normalize_record(r) for r in records])):
        view = event_view(event)
        for rule in dispatch.candidates(view):
            if rule.match(view):
                found[rule.rule_id].add(index)
    return found


def test_every_rule_loads_or_is_refused_with_a_reason(ruleset):
    files = sorted(FULL.rglob("*.yml"))
    assert len(files) == 2407
    rules = [e for e in ruleset.entries if e.kind != "file"]
    assert len(rules) == len(files)  # one entry per rule, loaded or not
    refused = [e for e in rules if e.error]
    assert all(e.error.strip() for e in refused)
    loaded = len(ruleset.rules) + len(ruleset.correlations)
    assert loaded + len(refused) == len(files)
    assert loaded >= 0.98 * len(files)
    reasons = {refusal_reason(e.error) for e in refused}
    assert all(reason.startswith("logsource category") for reason in reasons), reasons


def test_status_and_level_settings_leave_rules_out_with_the_setting_as_reason(tmp_path):
    (tmp_path / "r.yml").write_text(
        (FULL / "process_creation" / "proc_creation_win_sysinternals_procdump.yml").read_text()
    )
    assert len(load_rules(tmp_path, RuleFilter("high")).rules) == 0  # the rule is medium
    [entry] = load_rules(tmp_path, RuleFilter("high")).entries
    assert entry.error.startswith(SKIPPED) and "SIGMA_MIN_LEVEL" in entry.error
    [entry] = load_rules(tmp_path, RuleFilter(skip_statuses=frozenset({"test"}))).entries
    assert "status test is in SIGMA_SKIP_STATUSES" in entry.error
    assert len(load_rules(tmp_path, RuleFilter("medium")).rules) == 1


def test_the_prefilter_never_changes_what_matches(ruleset):
    records = read(ALL_RECORDS)
    through_prefilter = engine_matches(ruleset, records)
    dispatch = Dispatch(ruleset.rules)
    every_rule: dict[str, set[int]] = defaultdict(set)
    for index, event in enumerate(unsaved_events([normalize_record(r) for r in records])):
        view = event_view(event)
        for rule in dispatch.bucket(view.channel, view.code).rules:  # no pre-filter
            if rule.match(view):
                every_rule[rule.rule_id].add(index)
    assert through_prefilter == every_rule
    assert sum(map(len, every_rule.values())) > 1000  # the attack samples do match


def reference_value(value):
    """A record value as the engine reads it, for the SQLite table (as `normalized=True` does
    for strings): JSON booleans are `true`/`false` (SQLite would store 1/0, and SigmaHQ writes
    `Initiated: 'true'`); unnamed EventData `{"#text": [...]}` is its lines of text (SQLite would
    hold its JSON, whose doubled backslashes look like UNC paths to `Data|contains: '\\\\'`);
    a 64-bit unsigned id is text (beyond SQLite INTEGER)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and set(value) == {"#text"}:
        value = value["#text"]
    if isinstance(value, list):
        return "\n".join(str(item) for item in value if not isinstance(item, dict | list))
    if isinstance(value, int) and abs(value) >= 2**63:
        return str(value)
    return value


def sqlite_reference(records: list[dict]) -> dict[str, set[int]]:
    paths = sorted(str(p) for p in FULL.rglob("*.yml"))
    collection = SigmaCollection.load_ruleset(paths, collect_errors=True)
    backend = sqliteBackend(processing_pipeline=reference_pipeline())
    rows = [{k: reference_value(v) for k, v in r.items()} for r in records]
    db = sqlite_logs([{**r, "_row": i} for i, r in enumerate(rows)], normalized=True)
    found: dict[str, set[int]] = {}
    for rule in collection.rules:
        if not isinstance(rule, SigmaRule):
            continue
        try:
            queries = backend.convert_rule(rule)
        except Exception:  # noqa: BLE001, S112 - a rule the backend cannot convert is not compared
            continue
        rows: set[int] = set()
        for query in queries:
            select = re.sub(r"^SELECT \* FROM", 'SELECT "_row" FROM', query)
            rows |= {int(row[0]) for row in run(db, select)}
        found[f"sigma:{rule.id}"] = rows
    return found


def test_per_rule_matches_on_attack_samples_equal_pysigma_sqlite_with_the_pipelines(ruleset):
    # Security 4688 is process_creation for the engine, not for a one-logsource SQL query.
    records = [
        r for r in read(SAMPLES) if not (r.get("Channel") == "Security" and r["EventID"] == 4688)
    ]
    ours = engine_matches(ruleset, records)
    reference = sqlite_reference(records)
    compared = [
        rule_id for rule_id in reference if any(r.rule_id == rule_id for r in ruleset.rules)
    ]
    assert len(compared) > 2000
    differences = {
        rule_id: (
            sorted(ours.get(rule_id, set()) - reference[rule_id])[:5],
            sorted(reference[rule_id] - ours.get(rule_id, set()))[:5],
        )
        for rule_id in compared
        if ours.get(rule_id, set()) != reference[rule_id]
    }
    print(f"compared {len(compared)} rules; differences: {differences}")  # noqa: T201
    assert differences == {}
    assert sum(len(reference[r]) for r in compared) > 500
