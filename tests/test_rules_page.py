"""The rules page view /rules/ (no browser): served without secrets, strict CSP, its modules."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_rules_page_is_served_without_any_secret_and_with_a_strict_csp(client):
    response = client.get("/rules/?technique=T1003&rule=builtin.dcsync")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-api-base="/api/v1"' in html
    assert "siem/js/rules.js" in html and "siem/css/rules.css" in html
    assert "eyJ" not in html and "csrfmiddlewaretoken" not in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_rules_static_modules_are_served(client):
    for name in ("js/rules.js", "js/shell.js", "js/cases.js", "css/rules.css"):
        assert client.get(f"/static/siem/{name}").status_code == 200, name


def test_the_rules_page_only_answers_get(client):
    assert client.post("/rules/").status_code == 405


def test_the_hunting_page_links_to_it(client):
    assert '<a href="/rules/">Rules</a>' in client.get("/events/").content.decode()
