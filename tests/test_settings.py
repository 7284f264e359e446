"""Settings parsing: every knob typed, bad values refused with the variable's name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from siem import settings as siem_settings

BASE_DIR = siem_settings.BASE_DIR


def run_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with `env` on top of a clean environment."""
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    clean.update({"SIEM_IGNORE_DOTENV": "1", "DJANGO_SETTINGS_MODULE": "siem.settings", **env})
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('ok')"],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_to_start_with_debug_off_and_the_development_key():
    result = run_settings(DEBUG="false")
    assert result.returncode != 0
    assert "Refusing to start with DEBUG=False and the development SECRET_KEY" in result.stderr


def test_starts_with_debug_off_and_a_real_key():
    result = run_settings(DEBUG="false", SECRET_KEY="a-real-secret-key-from-the-environment")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_starts_in_debug_with_the_development_key():
    assert run_settings(DEBUG="true").returncode == 0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AI_BATCH_SIZE", "ten", "AI_BATCH_SIZE: expected an integer, got 'ten'"),
        ("AI_BATCH_SIZE", "0", "AI_BATCH_SIZE: must be at least 1, got 0"),
        ("DEBUG", "maybe", "DEBUG: expected true/false, got 'maybe'"),
        ("CORS_ORIGINS", "localhost:3000", "CORS_ORIGINS: 'localhost:3000' is not an origin"),
        ("AI_PROVIDER", "skynet", "AI_PROVIDER: expected builtin, deepseek, yandexgpt or openai"),
        ("DATABASE_URL", "oracle://x/y", "DATABASE_URL: unsupported scheme 'oracle'"),
        ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL: expected redis://"),
        ("AI_ALERT_THRESHOLD", "50", "AI_ALERT_THRESHOLD must not be below AI_NOTIFY_THRESHOLD"),
    ],
)
def test_bad_values_give_a_clear_error(name, value, message):
    result = run_settings(SECRET_KEY="k" * 40, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_env_helpers_parse_typed_values(monkeypatch):
    monkeypatch.setenv("X_INT", " 42 ")
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_LIST", "http://a:1, http://b:2,,")
    assert siem_settings.env_int("X_INT", 1) == 42
    assert siem_settings.env_bool("X_BOOL", False) is True
    assert siem_settings.env_list("X_LIST", []) == ["http://a:1", "http://b:2"]
    assert siem_settings.env_int("X_MISSING", 7) == 7
    monkeypatch.setenv("X_INT", "-3")
    with pytest.raises(ImproperlyConfigured, match="X_INT: must be at least 0"):
        siem_settings.env_int("X_INT", 1, minimum=0)


def test_guide_defaults():
    from django.conf import settings

    assert settings.AI_PROCESS_INTERVAL_SEC == 60
    assert settings.AI_BATCH_SIZE == 10
    assert settings.AI_RETRY_ATTEMPTS == 3
    assert settings.JWT_ACCESS_TOKEN_LIFETIME_SEC == 28800
    assert settings.DASHBOARD_UPDATE_INTERVAL_SEC == 30
    assert settings.AI_NOTIFY_THRESHOLD == 70
    assert settings.AI_ALERT_THRESHOLD == 85
    assert settings.AI_PROVIDER == "builtin"
    assert settings.CELERY_TASK_SERIALIZER == "json"
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]


def test_mssql_url_selects_mssql_django_with_the_driverless_backend():
    config = siem_settings.database_from_url(
        "mssql://siem:S3cret%21@sql.example.test:1433/siemdb?driver=ODBC+Driver+18+for+SQL+Server"
    )
    assert config["ENGINE"] == "mssql"
    assert config["NAME"] == "siemdb"
    assert config["HOST"] == "sql.example.test"
    assert config["PORT"] == 1433
    assert config["USER"] == "siem"
    assert config["PASSWORD"] == "S3cret!"
    assert config["OPTIONS"]["python_driver"] == "mssql_python"
    assert config["OPTIONS"]["driver"] == "ODBC Driver 18 for SQL Server"


def test_mssql_settings_load_the_mssql_backend_module():
    """The whole settings path with DATABASE_URL=mssql://: Django loads mssql-django's backend."""
    code = (
        "import django; django.setup();"
        "from django.db import connections;"
        "c = connections['default']; print(c.vendor, type(c).__module__)"
    )
    env = {k: v for k, v in os.environ.items()}
    env.update(
        SIEM_IGNORE_DOTENV="1",
        DJANGO_SETTINGS_MODULE="siem.settings",
        DATABASE_URL="mssql://sa:pw@127.0.0.1:1433/siem",
        SECRET_KEY="k" * 40,
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["microsoft", "mssql.base"]


def test_postgres_and_sqlite_urls():
    pg = siem_settings.database_from_url("postgres://u:p@db.example.test:5432/siem")
    assert pg["ENGINE"] == "django.db.backends.postgresql"
    lite = siem_settings.database_from_url(f"sqlite:///{BASE_DIR / 'data' / 'x.sqlite3'}")
    assert lite["ENGINE"] == "django.db.backends.sqlite3"
    assert lite["OPTIONS"]["timeout"] == 30
