"""The admin's rule management: hits columns, level overrides, exceptions, and the roles.

Users: the conftest's admin, analyst and viewer, each made staff (not superuser) so the admin
enforces their role groups' permissions. Sigma rules: tests/rules_helpers.py.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditLog
from alerts.detection.engine import get_engine
from alerts.detection.hits import record_hits
from alerts.models import RuleException, SigmaRule
from tests.detection_helpers import fresh_detection
from tests.rules_helpers import TASK_RULE, write_rules

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def rules_dir(settings, tmp_path):
    with fresh_detection(settings, sigma_dir=write_rules(tmp_path), config_ttl=None):
        get_engine()
        yield


def test_rule_lists_show_hits_and_exceptions(client, staff):
    record_hits({TASK_RULE: (3, 41), "builtin.dcsync": (1, 1)})
    RuleException.objects.create(rule_id=TASK_RULE, conditions={"host": ["ws-01"]})
    client.force_login(staff["viewer"])
    sigma = client.get(reverse("admin:alerts_sigmarule_changelist"))
    page = sigma.content.decode()
    assert sigma.status_code == 200
    for column in ("Alerts 24 h", "Events 7 d", "Last hit", "Exceptions"):
        assert column in page
    assert '<td class="field-events_24h">41</td>' in page
    assert f"?rule_id={TASK_RULE.replace(':', '%3A')}" in page
    builtin = client.get(reverse("admin:alerts_detectionrule_changelist")).content.decode()
    assert '<td class="field-alerts_24h">1</td>' in builtin


def test_admin_overrides_a_sigma_level_audited(client, staff):
    client.force_login(staff["admin"])
    row = SigmaRule.objects.get(rule_id=TASK_RULE)
    response = client.post(
        reverse("admin:alerts_sigmarule_change", args=[row.pk]),
        {"enabled": "on", "level_override": "high"},
    )
    assert response.status_code == 302
    assert SigmaRule.objects.get(pk=row.pk).level_override == "high"
    assert get_engine().config().severity == {TASK_RULE: 4}
    assert AuditLog.objects.get(action="rule.changed").details["rule"] == TASK_RULE


def test_admin_adds_changes_and_removes_an_exception(client, staff):
    client.force_login(staff["admin"])
    add = reverse("admin:alerts_ruleexception_add")
    form = client.get(add + f"?rule_id={TASK_RULE}").content.decode()
    assert f'value="{TASK_RULE}"' in form  # the rule lists' "add" link fills the rule in
    response = client.post(
        add,
        {
            "rule_id": TASK_RULE,
            "conditions": '{"SubjectUserName": "svc_backup"}',
            "comment": "nightly backup",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    exception = RuleException.objects.get()
    assert exception.conditions == {"SubjectUserName": ["svc_backup"]}
    assert exception.created_by == staff["admin"]
    assert TASK_RULE in get_engine().config().exceptions

    change = reverse("admin:alerts_ruleexception_change", args=[exception.pk])
    client.post(change, {"conditions": '{"host": "ws-07"}', "comment": "moved"})
    assert RuleException.objects.get().conditions == {"host": ["ws-07"]}
    client.post(reverse("admin:alerts_ruleexception_delete", args=[exception.pk]), {"post": "yes"})
    assert not RuleException.objects.exists()
    assert TASK_RULE not in get_engine().config().exceptions
    actions = list(
        AuditLog.objects.filter(action__startswith="rule.")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == ["rule.exception_added", "rule.exception_changed", "rule.exception_removed"]


@pytest.mark.parametrize(
    ("rule_id", "conditions", "error"),
    [
        ("sigma:nope", '{"host": "x"}', "No such rule"),
        (TASK_RULE, '{"host": ""}', "values are 1 to 1000 characters"),
        (TASK_RULE, '["host"]', "an object of field conditions"),
    ],
)
def test_the_exception_form_refuses_bad_input(client, staff, rule_id, conditions, error):
    client.force_login(staff["admin"])
    response = client.post(
        reverse("admin:alerts_ruleexception_add"), {"rule_id": rule_id, "conditions": conditions}
    )
    assert response.status_code == 200 and error in response.content.decode()
    assert not RuleException.objects.exists()


@pytest.mark.parametrize("role", ["analyst", "viewer"])
def test_analysts_and_viewers_only_read_exceptions(client, staff, role):
    exception = RuleException.objects.create(rule_id=TASK_RULE, conditions={"host": ["x"]})
    client.force_login(staff[role])
    assert client.get(reverse("admin:alerts_ruleexception_changelist")).status_code == 200
    add = client.post(
        reverse("admin:alerts_ruleexception_add"),
        {"rule_id": TASK_RULE, "conditions": '{"host": "y"}'},
    )
    assert add.status_code == 403
    delete = reverse("admin:alerts_ruleexception_delete", args=[exception.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    row = SigmaRule.objects.get(rule_id=TASK_RULE)
    change = client.post(
        reverse("admin:alerts_sigmarule_change", args=[row.pk]), {"level_override": "low"}
    )
    assert change.status_code == 403
    assert (
        RuleException.objects.count() == 1 and SigmaRule.objects.get(pk=row.pk).level_override == ""
    )
