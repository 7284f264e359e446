"""The LLM providers through the real `openai` client against a loopback chat-completions server.

Covers good, fenced, garbage, HTTP 500, timeout and partial answers, the per-provider defaults
(DeepSeek, YandexGPT), masking, an outage followed by recovery, and the two commands.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from events.analysis import run_batch
from events.models import AnalysisStatus, SecurityEvent
from tests.ai_helpers import FakeLLM, Reply, events_in, verdicts

pytestmark = pytest.mark.django_db


@pytest.fixture
def llm():
    fake = FakeLLM().start()
    yield fake
    fake.stop()


@pytest.fixture
def openai_provider(settings, llm):
    settings.AI_PROVIDER = "openai"
    settings.AI_BASE_URL = llm.base_url
    settings.AI_API_KEY = "sk-test"
    settings.AI_MODEL = "local-model"
    settings.AI_TIMEOUT_SEC = 5
    settings.AI_RETRY_ATTEMPTS = 3
    settings.AI_RETRY_BACKOFF_SEC = 0
    settings.AI_BATCH_SIZE = 10
    settings.AI_MASK_SENSITIVE = False
    return llm


def make_events(count: int, **fields) -> list[SecurityEvent]:
    values = {
        "event_code": 4625,
        "severity": 3,
        "message": "An account failed to log on",
        "user_name": "alice",
        "source_ip": "10.0.0.5",
        "raw": {"EventID": 4625, "TargetUserName": "alice", "IpAddress": "10.0.0.5"},
    }
    values.update(fields)
    return [
        SecurityEvent.objects.create(computer=f"WS-{index:03d}", **values) for index in range(count)
    ]


def state(event: SecurityEvent) -> SecurityEvent:
    event.refresh_from_db()
    return event


def test_good_answers_are_stored_on_every_event(openai_provider):
    events = make_events(3)
    openai_provider.behaviour = verdicts(lambda e: 10 + int(e["computer"][-1]), "brute_force")

    result = run_batch()

    assert (result.claimed, result.analyzed, result.requeued, result.failed) == (3, 3, 0, 0)
    for index, event in enumerate(events):
        event = state(event)
        assert event.ai_status == AnalysisStatus.DONE
        assert event.ai_score == 10 + index
        assert event.ai_category == "brute_force"
        assert event.ai_description == f"verdict for WS-{index:03d}"
        assert event.ai_provider == "openai"
        assert event.ai_analyzed_at is not None and event.ai_error == ""
    # One request for the whole batch, sent with the configured model and key.
    assert len(openai_provider.requests) == 1
    request = openai_provider.requests[0]
    assert request.body["model"] == "local-model"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert sorted(openai_provider.requested_ids()) == [e.event_id for e in events]


def test_a_fenced_answer_with_prose_is_understood(openai_provider):
    (event,) = make_events(1)

    def fenced(body):
        answer = {"analyses": [{"event_id": event.event_id, "score": 77, "category": "x"}]}
        return Reply(content=f"Here you go:\n```json\n{json.dumps(answer)}\n```\nBye")

    openai_provider.behaviour = fenced
    assert run_batch().analyzed == 1
    assert state(event).ai_score == 77


def test_garbage_fails_the_attempt_keeps_the_event_and_records_why(openai_provider):
    (event,) = make_events(1)
    openai_provider.behaviour = lambda body: Reply(content="I am sorry, I cannot do that.")

    result = run_batch()

    event = state(event)
    assert (result.analyzed, result.requeued) == (0, 1)
    assert event.ai_status == AnalysisStatus.PENDING and event.ai_attempts == 1
    assert "not the expected JSON" in event.ai_error


def test_a_body_that_is_not_a_completion_fails_the_attempt(openai_provider):
    (event,) = make_events(1)
    openai_provider.behaviour = lambda body: Reply(body="<html>gateway</html>")

    result = run_batch()

    assert result.requeued == 1 and result.error
    assert state(event).ai_status == AnalysisStatus.PENDING


def test_http_500_fails_the_attempt_with_the_status_in_the_reason(openai_provider):
    events = make_events(2)
    openai_provider.behaviour = lambda body: Reply(status=500)

    result = run_batch()

    assert (result.analyzed, result.requeued) == (0, 2)
    for event in events:
        event = state(event)
        assert event.ai_status == AnalysisStatus.PENDING
        assert "HTTP 500" in event.ai_error
    # The client's own retries are off: our attempts are counted in the database instead.
    assert len(openai_provider.requests) == 1


def test_a_provider_slower_than_ai_timeout_sec_fails_the_attempt(settings, openai_provider):
    settings.AI_TIMEOUT_SEC = 1
    (event,) = make_events(1)
    openai_provider.behaviour = lambda body: Reply(content="{}", delay=3)

    result = run_batch()

    event = state(event)
    assert result.requeued == 1
    assert "no answer within 1 s" in event.ai_error


def test_a_partial_batch_stores_what_came_back_and_retries_the_rest(openai_provider):
    first, second, third = make_events(3)

    def partial(body):
        return Reply(
            content=json.dumps(
                {
                    "analyses": [
                        {"event_id": first.event_id, "score": 150, "category": "Intrusion!"},
                        {"event_id": third.event_id, "score": "12", "category": "benign"},
                        {"event_id": 987654, "score": 99, "category": "invented"},
                    ]
                }
            )
        )

    openai_provider.behaviour = partial
    result = run_batch()

    assert (result.analyzed, result.requeued) == (2, 1)
    assert (state(first).ai_score, state(first).ai_category) == (100, "intrusion")
    assert state(third).ai_score == 12
    second = state(second)
    assert second.ai_status == AnalysisStatus.PENDING and second.ai_attempts == 1
    assert "no usable verdict" in second.ai_error
    assert not SecurityEvent.objects.filter(pk=987654).exists()


def test_after_ai_retry_attempts_failures_the_event_is_failed_with_the_reason(openai_provider):
    (event,) = make_events(1)
    openai_provider.behaviour = lambda body: Reply(status=503)

    outcomes = [run_batch() for _ in range(4)]

    assert [o.claimed for o in outcomes] == [1, 1, 1, 0]
    assert [o.failed for o in outcomes] == [0, 0, 1, 0]
    event = state(event)
    assert event.ai_status == AnalysisStatus.FAILED and event.ai_attempts == 3
    assert "HTTP 503" in event.ai_error


def test_an_outage_followed_by_recovery_analyzes_every_event(openai_provider):
    events = make_events(25)
    up = {"value": False}
    openai_provider.behaviour = lambda body: (
        verdicts(lambda e: 42)(body) if up["value"] else Reply(status=502)
    )

    # Down for three runs: every event gets a first attempt before any gets a second, and all
    # stay pending (none lost, none stuck in `processing`).
    for _ in range(3):
        run_batch()
    assert SecurityEvent.objects.filter(ai_status=AnalysisStatus.PENDING).count() == 25
    attempts = sorted(SecurityEvent.objects.values_list("ai_attempts", flat=True))
    assert attempts == [1] * 20 + [2] * 5

    up["value"] = True
    while run_batch().claimed:
        pass

    assert SecurityEvent.objects.filter(ai_status=AnalysisStatus.DONE, ai_score=42).count() == 25
    assert sorted(set(openai_provider.requested_ids())) == sorted(e.event_id for e in events)


def test_a_long_outage_leaves_failed_events_that_retry_failed_analyzes(openai_provider):
    make_events(4)
    openai_provider.behaviour = lambda body: Reply(status=500)
    while run_batch().claimed:
        pass
    assert SecurityEvent.objects.filter(ai_status=AnalysisStatus.FAILED).count() == 4

    openai_provider.behaviour = verdicts(lambda e: 30)
    out = StringIO()
    call_command("analyze_events", "--retry-failed", stdout=out)

    assert SecurityEvent.objects.filter(ai_status=AnalysisStatus.DONE).count() == 4
    text = out.getvalue()
    assert "Requeued 4 failed event(s)." in text
    assert "Done: 4 analyzed, 0 waiting for a retry, 0 failed" in text


def test_retries_wait_for_the_backoff(settings, openai_provider):
    from datetime import timedelta

    from django.utils import timezone

    settings.AI_RETRY_BACKOFF_SEC = 60
    (event,) = make_events(1)
    openai_provider.behaviour = lambda body: Reply(status=500)
    assert run_batch().requeued == 1

    assert run_batch().claimed == 0  # within 60 s of the failure
    later = timezone.now() + timedelta(seconds=61)
    assert run_batch(now=later).claimed == 1  # first retry after 60 s
    assert run_batch(now=later + timedelta(seconds=61)).claimed == 0  # second waits 120 s
    assert run_batch(now=later + timedelta(seconds=121)).claimed == 1


def test_deepseek_uses_its_model_and_json_mode(settings, llm):
    settings.AI_PROVIDER = "deepseek"
    settings.AI_BASE_URL = llm.base_url  # the default is https://api.deepseek.com
    settings.AI_API_KEY = "sk-deepseek"
    settings.AI_MODEL = ""
    llm.behaviour = verdicts(lambda e: 50)
    make_events(1)

    assert run_batch().analyzed == 1

    body = llm.requests[0].body
    assert body["model"] == "deepseek-chat"
    assert body["response_format"] == {"type": "json_object"}
    assert llm.requests[0].headers["authorization"] == "Bearer sk-deepseek"
    assert SecurityEvent.objects.get().ai_provider == "deepseek"


def test_yandexgpt_builds_the_model_uri_from_the_folder(settings, llm):
    settings.AI_PROVIDER = "yandexgpt"
    settings.AI_BASE_URL = llm.base_url
    settings.AI_API_KEY = "AQVN-test"
    settings.AI_MODEL = ""
    settings.AI_FOLDER_ID = "b1gfolder"
    llm.behaviour = verdicts(lambda e: 50)
    make_events(1)

    assert run_batch().analyzed == 1

    request = llm.requests[0]
    assert request.body["model"] == "gpt://b1gfolder/yandexgpt/latest"
    assert request.headers["openai-project"] == "b1gfolder"
    assert request.headers["x-folder-id"] == "b1gfolder"


def test_a_misconfigured_provider_fails_the_attempt_with_a_readable_reason(settings):
    settings.AI_PROVIDER = "deepseek"
    settings.AI_API_KEY = ""
    settings.AI_RETRY_BACKOFF_SEC = 0
    (event,) = make_events(1)

    assert run_batch().requeued == 1
    assert "AI_API_KEY is not set" in state(event).ai_error


def test_masking_hides_user_names_and_ips_and_restores_them_in_the_description(
    settings, openai_provider
):
    settings.AI_MASK_SENSITIVE = True
    (event,) = make_events(
        1,
        user_name="bob.smith",
        source_ip="192.168.7.23",
        raw={
            "EventID": 4688,
            "SubjectUserName": "bob.smith",
            "IpAddress": "192.168.7.23",
            "CommandLine": "net use \\\\192.168.7.23\\c$ /user:bob.smith secret",
        },
    )

    def echo_pseudonyms(body):
        (sent,) = events_in(body)
        answer = {
            "event_id": sent["event_id"],
            "score": 60,
            "category": "lateral_movement",
            "description": f"{sent['user_name']} mapped a share on {sent['source_ip']}",
        }
        return Reply(content=json.dumps([answer]))

    openai_provider.behaviour = echo_pseudonyms
    assert run_batch().analyzed == 1

    sent = json.dumps(openai_provider.requests[0].body)
    assert "bob.smith" not in sent and "192.168.7.23" not in sent
    (payload,) = events_in(openai_provider.requests[0].body)
    assert payload["user_name"] == "user-1" and payload["source_ip"] == "ip-1"
    assert payload["fields"]["CommandLine"] == "net use \\\\ip-1\\c$ /user:user-1 secret"
    assert state(event).ai_description == "bob.smith mapped a share on 192.168.7.23"


def test_check_ai_provider_reports_a_working_provider(openai_provider):
    openai_provider.behaviour = verdicts(lambda e: 96, "credential_access")
    out = StringIO()

    call_command("check_ai_provider", stdout=out)

    text = out.getvalue()
    assert "Checking openai (model local-model at http://127.0.0.1:" in text
    assert "OK: answered in" in text and "scored 96/100, category credential_access" in text
    assert len(openai_provider.requests) == 1
    assert SecurityEvent.objects.count() == 0  # nothing stored


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(status=401), "HTTP 401"),
        (Reply(content="no idea"), "not the expected JSON"),
        (Reply(content='{"analyses": []}'), "no usable verdict"),
    ],
)
def test_check_ai_provider_explains_a_failure(openai_provider, reply, reason):
    openai_provider.behaviour = lambda body: reply

    with pytest.raises(CommandError, match=reason) as failure:
        call_command("check_ai_provider", stdout=StringIO())
    assert str(failure.value).startswith("FAILED")
    assert "sk-test" not in str(failure.value)


def test_check_ai_provider_explains_an_unreachable_endpoint(settings, openai_provider):
    openai_provider.stop()
    with pytest.raises(CommandError, match="cannot connect to"):
        call_command("check_ai_provider", stdout=StringIO())
    openai_provider.start()


def test_analyze_events_stops_on_a_provider_error_and_says_so(openai_provider):
    make_events(25)
    openai_provider.behaviour = lambda body: Reply(status=500)
    out, err = StringIO(), StringIO()

    call_command("analyze_events", "--batch-size", "10", stdout=out, stderr=err)

    assert len(openai_provider.requests) == 1
    assert "Analyzing 25 pending event(s) with openai" in out.getvalue()
    assert "[10/25] batch 1: 0 analyzed, 10 to retry, 0 failed" in out.getvalue()
    assert "Provider error: openai: HTTP 500" in err.getvalue()


def test_masking_copes_with_domain_qualified_names(settings, openai_provider):
    """Names like NT AUTHORITY\\SYSTEM-style DOMAIN\\user (Sysmon `User`) hold backslashes."""
    settings.AI_MASK_SENSITIVE = True
    (event,) = make_events(
        1,
        user_name="",
        source_ip="",
        raw={"EventID": 1, "User": "CORP\\alice", "CommandLine": "whoami /all"},
    )

    def echo(body):
        (sent,) = events_in(body)
        text = f"{sent['fields']['User']} ran whoami"
        return Reply(
            content=json.dumps([{"event_id": sent["event_id"], "score": 40, "description": text}])
        )

    openai_provider.behaviour = echo
    assert run_batch().analyzed == 1
    assert "alice" not in json.dumps(openai_provider.requests[0].body)
    assert state(event).ai_description == "CORP\\alice ran whoami"


def test_after_a_long_outage_the_analyzer_revives_failed_events_by_itself(
    settings, openai_provider
):
    from datetime import timedelta

    from django.utils import timezone

    settings.AI_PROCESS_INTERVAL_SEC = 60
    events = make_events(12)
    openai_provider.behaviour = lambda body: Reply(status=500)
    while run_batch().claimed:
        pass
    failed = SecurityEvent.objects.filter(ai_status=AnalysisStatus.FAILED)
    assert failed.count() == 12
    assert failed.first().ai_error.startswith("provider unavailable: openai: HTTP 500")

    # Nothing pending: a probe of failed events, not before the probe delay, one request.
    start = timezone.now()
    assert run_batch(now=start).claimed == 0
    requests_before = len(openai_provider.requests)
    probe = run_batch(now=start + timedelta(seconds=61))
    assert (probe.claimed, probe.failed, probe.revived) == (10, 10, 0)
    assert len(openai_provider.requests) == requests_before + 1

    # The provider is back: the next probe succeeds and brings every other event back.
    openai_provider.behaviour = verdicts(lambda e: 33)
    recovered = run_batch(now=start + timedelta(seconds=125))
    assert (recovered.analyzed, recovered.revived) == (10, 2)
    while run_batch().claimed:
        pass
    assert SecurityEvent.objects.filter(ai_status=AnalysisStatus.DONE).count() == len(events)


def test_an_event_the_model_keeps_skipping_is_not_revived_automatically(openai_provider):
    skipped, answered = make_events(2)

    def skip_one(body):
        good = verdicts(lambda e: 20)(body)
        analyses = json.loads(good.content)["analyses"]
        kept = [a for a in analyses if a["event_id"] != skipped.event_id]
        return Reply(content=json.dumps({"analyses": kept}))

    openai_provider.behaviour = skip_one
    while run_batch().claimed:
        pass

    skipped = state(skipped)
    assert skipped.ai_status == AnalysisStatus.FAILED and skipped.ai_attempts == 3
    assert skipped.ai_error == "openai: the answer had no usable verdict for this event"
    assert state(answered).ai_status == AnalysisStatus.DONE
