"""Reading verdicts out of what models really answer (no network, no database)."""

from __future__ import annotations

import json

import pytest

from events.ai import Analysis, ProviderError
from events.ai.parsing import parse_analyses

GOOD = {
    "analyses": [
        {"event_id": 1, "score": 91, "category": "Credential Access", "description": "Mimikatz"},
        {"event_id": 2, "score": 5, "category": "benign", "description": "routine logon"},
    ]
}


def test_a_well_formed_answer_gives_one_verdict_per_event():
    verdicts = parse_analyses(json.dumps(GOOD), [1, 2])
    assert verdicts == {
        1: Analysis(91, "credential_access", "Mimikatz"),
        2: Analysis(5, "benign", "routine logon"),
    }


def test_a_fenced_answer_with_prose_around_it_is_read():
    text = f"Sure! Here is my analysis:\n```json\n{json.dumps(GOOD, indent=2)}\n```\nStay safe."
    assert set(parse_analyses(text, [1, 2])) == {1, 2}


def test_json_embedded_in_prose_without_fences_is_found():
    text = "Analysis follows " + json.dumps(GOOD) + " — end of analysis."
    assert parse_analyses(text, [1, 2])[1].score == 91


def test_a_bare_list_and_a_single_object_are_accepted():
    assert set(parse_analyses(json.dumps(GOOD["analyses"]), [1, 2])) == {1, 2}
    single = {"event_id": "2", "score": "40", "category": "x", "description": "y"}
    assert parse_analyses(json.dumps(single), [2]) == {2: Analysis(40, "x", "y")}


@pytest.mark.parametrize(
    ("score", "stored"),
    [(150, 100), (-3, 0), (72.6, 73), ("85%", 85), ("90/100", 90), (float("inf"), 100)],
)
def test_out_of_range_and_odd_scores_are_clamped_to_0_100(score, stored):
    text = json.dumps({"analyses": [{"event_id": 7, "score": score, "category": "c"}]})
    assert parse_analyses(text, [7])[7].score == stored


def test_items_without_a_usable_score_or_id_are_dropped_and_the_rest_kept():
    text = json.dumps(
        {
            "analyses": [
                {"event_id": 1, "score": "high", "category": "c"},
                {"score": 50, "category": "c"},
                {"event_id": True, "score": 50},
                "not an object",
                {"event_id": 2, "score": 60},
            ]
        }
    )
    assert parse_analyses(text, [1, 2]) == {2: Analysis(60, "unknown", "")}


def test_extra_event_ids_are_ignored_and_the_first_verdict_for_an_id_wins():
    text = json.dumps(
        [
            {"event_id": 1, "score": 10, "category": "a"},
            {"event_id": 99, "score": 100, "category": "b"},
            {"event_id": 1, "score": 90, "category": "c"},
        ]
    )
    assert parse_analyses(text, [1]) == {1: Analysis(10, "a", "")}


@pytest.mark.parametrize("text", ["", "   ", "I cannot help with that.", "{not json", "[1, 2]"])
def test_an_answer_without_the_json_raises_a_provider_error(text):
    with pytest.raises(ProviderError):
        parse_analyses(text, [1])


def test_long_descriptions_and_categories_are_trimmed():
    text = json.dumps(
        [{"event_id": 1, "score": 1, "category": "x" * 200, "description": "d" * 5000}]
    )
    verdict = parse_analyses(text, [1])[1]
    assert len(verdict.category) == 64 and len(verdict.description) == 2000
