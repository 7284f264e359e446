"""`manage.py detect --replay FILE` for rule tuning: a dry run by default, or a real import.

Reads the real captures of ../shared/data/windows (never copied here). Users: none.
"""

from __future__ import annotations

from io import StringIO

import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from alerts.models import Alert
from events.models import SecurityEvent
from tests.detection_helpers import DATA, fresh_detection

SPRAY = DATA / "windows" / "attacks" / "eas_kerberos_password_spray_4771.jsonl"
DCSYNC_EVTX = DATA / "windows" / "evtx" / "CA_DCSync_4662.evtx"


@pytest.fixture(autouse=True)
def detection_namespace(settings):
    with fresh_detection(settings, sigma_dir=str(DATA / "sigma"), pattern="*detect:*"):
        yield


def run(*args) -> str:
    out = StringIO()
    call_command("detect", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_a_dry_run_prints_which_rules_fire_how_often_and_stores_nothing():
    text = run("--replay", str(SPRAY), "--replay", str(DCSYNC_EVTX))
    lines = text.splitlines()
    assert lines[0] == "15 event(s) replayed (dry run: nothing stored)"
    assert any(line.split()[:3] == ["9", "1", "builtin.password_spray"] for line in lines), text
    assert any(line.split()[:3] == ["3", "1", "builtin.dcsync"] for line in lines), text
    assert not SecurityEvent.objects.exists()
    assert not Alert.objects.exists()
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    assert not list(client.scan_iter(f"{django_settings.REDIS_KEY_PREFIX}:replay-*"))


@pytest.mark.django_db(transaction=True)  # each batch really commits, then detection runs
def test_store_imports_the_file_and_prints_the_alert_counts():
    text = run("--replay", str(SPRAY), "--store")
    assert "12 event(s) stored" in text
    assert "       9  builtin.password_spray" in text
    assert SecurityEvent.objects.count() == 12
    assert Alert.objects.get(rule_id="builtin.password_spray").occurrence_count == 9


def test_an_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"EventID": 4625}\nnot json\n')
    with pytest.raises(CommandError, match="bad.jsonl:2: not JSON"):
        run("--replay", str(bad))
