"""Lists that stay fast at millions of events: keyset pages, fast counts, lean admin changelists.

Speed itself is measured by bench/scale.py; these tests hold the behaviour: the same response
shape, every event exactly once across cursor pages (ties on the timestamp included), filters
applied, and admin changelists without `SELECT DISTINCT` or a date hierarchy.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import services as alert_services
from events.models import SecurityEvent
from events.services import create_events
from siem import pagination

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]


@pytest.fixture
def events():
    now = timezone.now().replace(microsecond=0)
    items = [
        {
            "computer": f"WS-{index % 3}",
            "event_code": 4624 + index % 2,
            "severity": 1 + index % 5,
            "message": "m",
            "source_type": "Windows Security",
            "user_name": f"user{index % 4}",
            "source_ip": f"10.0.0.{index % 4}",
            # Pairs share a timestamp: the cursor must break ties by event id.
            "timestamp": now - timedelta(seconds=index // 2),
        }
        for index in range(23)
    ]
    return create_events(items).created


def newest_first(rows) -> list[int]:
    return [e.event_id for e in sorted(rows, key=lambda e: (e.timestamp, e.event_id), reverse=True)]


def walk(client, query: str) -> list[dict]:
    pages, url = [], f"/api/v1/events/?{query}"
    while url:
        body = client.get(url).json()
        assert set(body) == {"count", "next", "previous", "results"}
        assert body["previous"] is None
        pages.append(body)
        url = body["next"]
    return pages


def test_cursor_pages_return_every_event_once_newest_first(clients, events):
    pages = walk(clients["viewer"], "cursor=&page_size=5")

    ids = [row["event_id"] for page in pages for row in page["results"]]
    assert ids == newest_first(events)
    assert len(pages) == 5 and all(page["count"] == 23 for page in pages)


def test_cursor_pages_keep_the_filters(clients, events):
    pages = walk(clients["analyst"], "computer=WS-1&severity_min=2&cursor=&page_size=2")

    ids = [row["event_id"] for page in pages for row in page["results"]]
    expected = [e for e in events if e.computer == "WS-1" and e.severity >= 2]
    assert ids == newest_first(expected)
    assert pages[0]["count"] == len(expected)


def test_page_numbers_work_as_before(clients, events):
    body = clients["viewer"].get("/api/v1/events/?page=2&page_size=10").json()

    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 23
    assert [row["event_id"] for row in body["results"]] == newest_first(events)[10:20]
    assert "page=3" in body["next"] and body["previous"].endswith("page_size=10")


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WzEsMl0", "e30"])
def test_a_bad_cursor_is_a_400(clients, events, cursor):
    response = clients["viewer"].get(f"/api/v1/events/?cursor={cursor}")

    assert response.status_code == 400
    assert "Invalid cursor" in str(response.json()["cursor"])


def test_cursor_pages_refuse_another_ordering(clients, events):
    response = clients["viewer"].get("/api/v1/events/?cursor=&ordering=severity")

    assert response.status_code == 400


def test_fast_count_is_exact_for_small_results(events):
    assert pagination.fast_count(SecurityEvent.objects.all()) == 23
    assert pagination.fast_count(SecurityEvent.objects.filter(computer="WS-0")) == 8


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner's estimate")
def test_fast_count_takes_the_planner_estimate_above_the_limit(events, monkeypatch):
    monkeypatch.setattr(pagination, "ESTIMATE_ABOVE", -1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_securityevent")

    assert pagination.fast_count(SecurityEvent.objects.all()) == 23  # pg_class.reltuples
    estimate = pagination.fast_count(SecurityEvent.objects.filter(computer="WS-0"))
    assert isinstance(estimate, int) and 1 <= estimate <= 23


@pytest.fixture
def staff(admin_user) -> Client:
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    return client


def changelist(client: Client, url: str):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    sql = " ".join(query["sql"].upper() for query in queries.captured_queries)
    assert "DISTINCT" not in sql  # no list_filter or date hierarchy scanning the table
    return response


def test_admin_events_changelist_has_no_table_scans(staff, events):
    response = changelist(staff, "/admin/events/securityevent/?severity__exact=5")

    assert len(response.context["cl"].result_list) == len([e for e in events if e.severity == 5])
    assert response.context["cl"].date_hierarchy is None


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("ws-1", lambda e: e.computer == "WS-1"),  # host names as typed or upper-case
        ("user2", lambda e: e.user_name == "user2"),
        ("10.0.0.3", lambda e: e.source_ip == "10.0.0.3"),
        ("4625", lambda e: e.event_code == 4625),
    ],
)
def test_admin_events_search_matches_exact_indexed_values(staff, events, term, expected):
    response = changelist(staff, f"/admin/events/securityevent/?q={term}")

    found = {e.event_id for e in response.context["cl"].result_list}
    assert found == {e.event_id for e in events if expected(e)}


def test_admin_events_search_finds_an_event_by_id(staff, events):
    response = changelist(staff, f"/admin/events/securityevent/?q=%23{events[5].event_id}")

    assert [e.event_id for e in response.context["cl"].result_list] == [events[5].event_id]


def test_admin_events_search_without_a_match_is_empty(staff, events):
    response = changelist(staff, "/admin/events/securityevent/?q=nobody")

    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize(
    ("term", "titles"),
    [
        ("ws-1", {"Brute force on WS-1"}),  # exact host, as typed or upper-case
        ("brute_force", {"Brute force on WS-1", "Brute force on WS-2"}),  # exact category
        ("force on", {"Brute force on WS-1", "Brute force on WS-2"}),  # else words of titles
        ("nothing like it", set()),
    ],
)
def test_admin_alerts_changelist_searches_hosts_exactly_then_titles(staff, term, titles):
    for host in ["WS-1", "WS-2"]:
        alert_services.create_alert(
            title=f"Brute force on {host}", severity=4, category="brute_force", hostname=host
        )
    alert_services.create_alert(title="Other", severity=2, category="other", hostname="DC-1")

    response = changelist(staff, f"/admin/alerts/alert/?status__exact=new&q={term}")

    assert {a.title for a in response.context["cl"].result_list} == titles


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner's estimate")
def test_a_too_low_estimate_costs_a_bounded_count(events, monkeypatch):
    """Rows inserted since the last ANALYZE: the planner says 1, there are 23; the count stops
    after ESTIMATE_ABOVE + 1 rows instead of counting them all."""
    monkeypatch.setattr(pagination, "ESTIMATE_ABOVE", 5)
    monkeypatch.setattr(pagination, "_postgresql_estimate", lambda queryset, connection: 1)

    assert pagination.fast_count(SecurityEvent.objects.all()) == 6
    assert pagination.fast_count(SecurityEvent.objects.filter(computer="WS-0")) == 6
    assert pagination.fast_count(SecurityEvent.objects.filter(computer="WS-0", severity=1)) == 2
