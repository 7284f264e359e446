"""The admin edits detection: built-in thresholds and switches, Sigma rules on/off, load errors.

Users: `admin` (group admin) from conftest, made staff for the admin site.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from alerts.detection.engine import get_engine
from alerts.models import DetectionRule, SigmaRule
from tests.detection_helpers import SIGMA_DIR, fresh_detection


@pytest.fixture(autouse=True)
def detection_namespace(settings):
    with fresh_detection(settings, sigma_dir=str(SIGMA_DIR), config_ttl=None):
        yield


@pytest.fixture
def staff_client(client, admin_user):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    return client


@pytest.mark.django_db
def test_builtin_rules_are_listed_with_their_defaults(staff_client):
    response = staff_client.get(reverse("admin:alerts_detectionrule_changelist"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Multiple failed login attempts" in page
    assert "8 in 240 s" in page  # brute force defaults from settings
    assert DetectionRule.objects.count() == 12
    assert "Successful logon after repeated failures" in page


@pytest.mark.django_db
def test_editing_a_builtin_rule_takes_effect_in_the_running_engine(staff_client):
    engine = get_engine()
    assert engine.config().rule("builtin.brute_force").threshold is None
    row = DetectionRule.objects.get(rule_id="builtin.brute_force")
    response = staff_client.post(
        reverse("admin:alerts_detectionrule_change", args=[row.pk]),
        {"enabled": "on", "threshold": "5", "window_seconds": "300", "severity": "5"},
    )
    assert response.status_code == 302
    settings_ = engine.config().rule("builtin.brute_force")
    assert (settings_.enabled, settings_.threshold, settings_.window_seconds) == (True, 5, 300)
    assert settings_.severity == 5


@pytest.mark.django_db
def test_sigma_rules_page_shows_load_errors_and_disables_rules(staff_client):
    engine = get_engine()  # records the rules found on disk
    url = reverse("admin:alerts_sigmarule_changelist")
    response = staff_client.get(url + "?loaded=no")
    page = response.content.decode()
    assert "Multiple Failed Logons With Unknown Username From Single Source" in page
    assert "pipe syntax" in page
    assert "Mimikatz DC Sync" not in page

    dcsync = SigmaRule.objects.get(title="Mimikatz DC Sync")
    staff_client.post(url, {"action": "disable", "_selected_action": [str(dcsync.pk)]})
    assert not SigmaRule.objects.get(pk=dcsync.pk).enabled
    assert dcsync.rule_id in engine.config().sigma_disabled
