"""/api/v1/rules/: the list and its filters, one rule, its settings, its exceptions, coverage.

Callers by role (tests/api_helpers.py): every role reads; only admins write. The Sigma rules
are this test's own (tests/rules_helpers.py), recorded as the engine records them.
"""

from __future__ import annotations

import pytest

from accounts.models import AuditLog
from alerts.detection.builtin import BUILTIN_RULES
from alerts.detection.engine import get_engine
from alerts.detection.hits import record_hits
from alerts.models import RuleException, SigmaRule
from tests.api_helpers import DENIED, READERS
from tests.detection_helpers import fresh_detection
from tests.rules_helpers import TASK_BURST, TASK_RULE, write_rules

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]
NOT_ADMIN = {**DENIED, "analyst": 403}  # the viewer too (DENIED has it)
NO_READ = {caller: code for caller, code in DENIED.items() if caller not in READERS}


@pytest.fixture(autouse=True)
def rules_dir(settings, tmp_path):
    (tmp_path / "broken.yml").write_text("title: Broken\ndetection: {}\n")
    with fresh_detection(settings, sigma_dir=write_rules(tmp_path), config_ttl=None):
        get_engine()
        yield


def listed(client, query: str = "") -> list[dict]:
    response = client.get(f"/api/v1/rules/?page_size=500{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def rule_audit():
    """Audit entries about rules (the clients fixture enrolls an agent: audited too)."""
    return AuditLog.objects.filter(action__startswith="rule").order_by("pk")


def ids(rules: list[dict]) -> set[str]:
    return {rule["id"] for rule in rules}


@pytest.mark.parametrize("caller", [*READERS, *NO_READ])
def test_every_role_reads_the_rules(clients, caller):
    code = NO_READ.get(caller, 200)
    for path in (
        "rules/",
        f"rules/{TASK_RULE}/",
        "rules/coverage/",
        f"rules/{TASK_RULE}/exceptions/",
    ):
        assert clients[caller].get(f"/api/v1/{path}").status_code == code, path


def test_the_list_has_builtin_and_sigma_rules_with_their_state(clients):
    rules = {rule["id"]: rule for rule in listed(clients["viewer"])}
    assert len([r for r in rules.values() if r["source"] == "builtin"]) == len(BUILTIN_RULES)
    task = rules[TASK_RULE]
    assert (task["source"], task["kind"], task["enabled"], task["loaded"]) == (
        "sigma",
        "rule",
        True,
        True,
    )
    assert (task["level"], task["severity"], task["level_override"]) == ("medium", 3, "")
    assert task["techniques"] == [
        {"id": "T1053.005", "name": "Scheduled Task/Job: Scheduled Task", "tactic": "Execution"}
    ]
    assert task["hits"] == {
        "alerts_24h": 0,
        "events_24h": 0,
        "alerts_7d": 0,
        "events_7d": 0,
        "last_hit": None,
    }
    brute = rules["builtin.brute_force"]
    assert (brute["kind"], brute["threshold"], brute["level"]) == ("correlation", 8, "high")


def test_filters(clients):
    viewer = clients["viewer"]
    SigmaRule.objects.filter(rule_id=TASK_BURST).update(enabled=False)
    assert ids(listed(viewer, "&source=sigma&loaded=true")) == {TASK_RULE, TASK_BURST}
    assert all(not r["loaded"] for r in listed(viewer, "&loaded=false"))
    assert listed(viewer, "&loaded=false")
    assert ids(listed(viewer, "&enabled=false")) == {TASK_BURST}
    assert ids(listed(viewer, "&source=sigma&level=high")) == {TASK_BURST}
    assert ids(listed(viewer, "&technique=T1053")) == {TASK_RULE, TASK_BURST}
    assert ids(listed(viewer, "&technique=attack.t1053.005")) == {TASK_RULE}
    assert ids(listed(viewer, "&technique=T1110")) == {
        "builtin.brute_force",
        "builtin.password_spray",
        "builtin.failed_then_success",
    }
    assert ids(listed(viewer, "&q=SCHEDULED")) == {TASK_RULE, TASK_BURST}
    assert ids(listed(viewer, "&q=task_burst.yml")) == {TASK_BURST}
    assert ids(listed(viewer, "&source=builtin&level=critical")) == {
        "builtin.dcsync",
        "builtin.lsass_access",
    }


def test_ordering_by_hits(clients):
    record_hits({TASK_BURST: (1, 9), "builtin.dcsync": (2, 4)})
    rules = listed(clients["viewer"], "&ordering=-events_24h")
    assert [rule["id"] for rule in rules[:2]] == [TASK_BURST, "builtin.dcsync"]
    assert rules[0]["hits"]["events_24h"] == 9 and rules[0]["hits"]["last_hit"]
    assert listed(clients["viewer"], "&ordering=id")[0]["id"] == "builtin.admin_share_access"
    # Not ordered by hits: the page's rules read their own hits.
    [dcsync] = listed(clients["viewer"], "&q=dcsync&source=builtin")
    assert (dcsync["hits"]["alerts_24h"], dcsync["hits"]["events_7d"]) == (2, 4)
    assert clients["viewer"].get("/api/v1/rules/builtin.dcsync/").json()["hits"]["alerts_7d"] == 2


@pytest.mark.parametrize(
    "query",
    ["mitre=T1003", "source=windows", "enabled=maybe", "level=severe", "technique=credential"],
)
def test_unknown_or_bad_parameters_are_400_naming_them(clients, query):
    response = clients["viewer"].get(f"/api/v1/rules/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def test_coverage_rejects_parameters(clients):
    assert clients["viewer"].get("/api/v1/rules/coverage/?tactic=x").status_code == 400


def test_a_sigma_rule_reads_with_its_yaml_and_techniques(clients):
    rule = clients["analyst"].get(f"/api/v1/rules/{TASK_RULE}/").json()
    assert rule["format"] == "yaml" and rule["text"].startswith("title: Scheduled task created")
    assert [t["id"] for t in rule["techniques"]] == ["T1053.005"]
    assert rule["exceptions"] == [] and rule["path"] == "task_created.yml"


def test_an_unknown_rule_is_404(clients):
    assert clients["admin"].get("/api/v1/rules/sigma:nope/").status_code == 404
    assert clients["admin"].patch("/api/v1/rules/sigma:nope/", {}, format="json").status_code == 404
    assert clients["admin"].get("/api/v1/rules/sigma:nope/exceptions/").status_code == 404


# --- writes: admins only -------------------------------------------------------------------------
@pytest.mark.parametrize("caller", list(NOT_ADMIN))
def test_only_admins_change_rules(clients, caller):
    code = NOT_ADMIN[caller]
    client = clients[caller]
    assert (
        client.patch(f"/api/v1/rules/{TASK_RULE}/", {"enabled": False}, format="json").status_code
        == code
    )
    body = {"conditions": {"host": "ws-01"}}
    url = f"/api/v1/rules/{TASK_RULE}/exceptions/"
    assert client.post(url, body, format="json").status_code == code
    exception = RuleException.objects.create(rule_id=TASK_RULE, conditions={"host": ["x"]})
    one = f"{url}{exception.pk}/"
    assert client.patch(one, {"comment": "x"}, format="json").status_code == code
    assert client.delete(one).status_code == code
    assert SigmaRule.objects.get(rule_id=TASK_RULE).enabled
    assert RuleException.objects.count() == 1 and not rule_audit().exists()


def test_admin_disables_and_overrides_a_sigma_rule(clients):
    admin = clients["admin"]
    url = f"/api/v1/rules/{TASK_RULE}/"
    rule = admin.patch(url, {"enabled": False, "level": "critical"}, format="json").json()
    assert (rule["enabled"], rule["level"], rule["level_override"], rule["severity"]) == (
        False,
        "critical",
        "critical",
        5,
    )
    assert rule["default_level"] == "medium"
    assert TASK_RULE in get_engine().config().sigma_disabled
    assert get_engine().config().severity == {TASK_RULE: 5}
    rule = admin.patch(url, {"level": None}, format="json").json()
    assert (rule["level"], rule["level_override"]) == ("medium", "")
    actions = list(rule_audit().values_list("action", flat=True))
    assert actions == ["rule.disabled", "rule.changed", "rule.changed"]


def test_admin_tunes_a_builtin_rule(clients):
    url = "/api/v1/rules/builtin.brute_force/"
    body = {"threshold": 20, "window_seconds": 600, "severity": 5}
    rule = clients["admin"].patch(url, body, format="json").json()
    assert (rule["threshold"], rule["window_seconds"], rule["level"]) == (20, 600, "critical")
    assert get_engine().config().rule("builtin.brute_force").threshold == 20
    assert rule_audit().get().action == "rule.changed"


@pytest.mark.parametrize(
    ("rule_id", "body", "field"),
    [
        (TASK_RULE, {"severity": 5}, "severity"),  # a built-in setting on a Sigma rule
        (TASK_RULE, {"level": "severe"}, "level"),
        (TASK_RULE, {"enabled": "perhaps"}, "enabled"),
        ("builtin.dcsync", {"level": "low"}, "level"),
        ("builtin.brute_force", {"threshold": 0}, "threshold"),
        ("builtin.brute_force", {"title": "x"}, "title"),
    ],
)
def test_bad_rule_changes_are_400_naming_the_field(clients, rule_id, body, field):
    response = clients["admin"].patch(f"/api/v1/rules/{rule_id}/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not rule_audit().exists()


def test_exceptions_crud_is_audited_and_reaches_the_engine(clients, admin_user):
    admin, url = clients["admin"], f"/api/v1/rules/{TASK_RULE}/exceptions/"
    body = {"conditions": {"SubjectUserName": "svc_backup"}, "comment": "backup job, CHG-42"}
    created = admin.post(url, body, format="json")
    assert created.status_code == 201
    exception = created.json()
    assert exception["conditions"] == {"SubjectUserName": ["svc_backup"]}
    assert (exception["rule_id"], exception["created_by"]) == (TASK_RULE, "admin")
    assert TASK_RULE in get_engine().config().exceptions

    one = f"{url}{exception['id']}/"
    assert clients["viewer"].get(url).json()[0]["id"] == exception["id"]
    assert clients["viewer"].get(one).json()["comment"] == "backup job, CHG-42"
    assert clients["viewer"].get(f"/api/v1/rules/{TASK_RULE}/").json()["exception_count"] == 1
    changed = admin.patch(one, {"conditions": {"host": ["WS-01", "ws-02"]}}, format="json")
    assert changed.json()["conditions"] == {"host": ["WS-01", "ws-02"]}
    assert admin.delete(one).status_code == 204
    assert admin.get(one).status_code == 404
    assert TASK_RULE not in get_engine().config().exceptions
    entries = list(rule_audit())
    assert [entry.action for entry in entries] == [
        "rule.exception_added",
        "rule.exception_changed",
        "rule.exception_removed",
    ]
    assert entries[1].details["conditions"]["to"] == {"host": ["WS-01", "ws-02"]}
    assert entries[2].details["rule"] == TASK_RULE and entries[0].actor == admin_user


def test_an_exception_of_another_rule_is_404_here(clients):
    other = RuleException.objects.create(rule_id=TASK_BURST, conditions={"host": ["x"]})
    response = clients["admin"].delete(f"/api/v1/rules/{TASK_RULE}/exceptions/{other.pk}/")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "conditions"),
        ({"conditions": {}}, "conditions"),
        ({"conditions": ["host"]}, "conditions"),
        ({"conditions": {"host": ""}}, "conditions"),
        ({"conditions": {"host": {"nested": 1}}}, "conditions"),
        ({"conditions": {"bad name": "x"}}, "conditions"),
        ({"conditions": {"host": "x"}, "comment": 5 * "x" * 1000}, "comment"),
    ],
)
def test_bad_exceptions_are_400_naming_the_field(clients, body, field):
    response = clients["admin"].post(f"/api/v1/rules/{TASK_RULE}/exceptions/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not RuleException.objects.exists()


def test_coverage_counts_enabled_and_disabled_rules_per_technique(clients):
    coverage = clients["viewer"].get("/api/v1/rules/coverage/").json()
    tactics = {tactic["tactic"]: tactic for tactic in coverage["tactics"]}
    execution = {t["id"]: t for t in tactics["Execution"]["techniques"]}
    assert (execution["T1053"]["enabled"], execution["T1053"]["disabled"]) == (1, 0)
    assert execution["T1053.005"]["name"] == "Scheduled Task/Job: Scheduled Task"
    assert execution["T1053.005"]["rules"] == [
        {
            "id": TASK_RULE,
            "name": "Scheduled task created (test)",
            "source": "sigma",
            "enabled": True,
        }
    ]
    access = {t["id"]: t for t in tactics["Credential Access"]["techniques"]}
    assert access["T1110"]["enabled"] == 3  # brute force, spraying, failures then success
    assert coverage["tactics"][0]["tactic"] in ("Execution", "Persistence")  # kill-chain order

    clients["admin"].patch(f"/api/v1/rules/{TASK_RULE}/", {"enabled": False}, format="json")
    coverage = clients["viewer"].get("/api/v1/rules/coverage/").json()
    tactics = {tactic["tactic"]: tactic for tactic in coverage["tactics"]}
    execution = {t["id"]: t for t in tactics["Execution"]["techniques"]}
    assert (execution["T1053.005"]["enabled"], execution["T1053.005"]["disabled"]) == (0, 1)
    assert coverage["covered"] == coverage["techniques"] - 1


def test_the_schema_describes_the_rules_api(clients):
    schema = (
        clients["viewer"]
        .get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        .json()
    )
    paths = schema["paths"]
    assert {"get"} <= set(paths["/api/v1/rules/"])
    assert {"get", "patch"} <= set(paths["/api/v1/rules/{rule_id}/"])
    assert {"get", "post"} <= set(paths["/api/v1/rules/{rule_id}/exceptions/"])
    assert {"get", "patch", "delete"} <= set(
        paths["/api/v1/rules/{rule_id}/exceptions/{exception_id}/"]
    )
    assert "get" in paths["/api/v1/rules/coverage/"]
    names = {p["name"] for p in paths["/api/v1/rules/"]["get"]["parameters"]}
    assert {"source", "enabled", "level", "loaded", "technique", "q", "page"} <= names
