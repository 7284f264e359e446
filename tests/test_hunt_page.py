"""The hunting page view /events/ (no browser): served without secrets, strict CSP, its modules."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_hunting_page_is_served_without_any_secret_and_with_a_strict_csp(client):
    response = client.get("/events/?q=computer%3Adc-01&range=24h")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-api-base="/api/v1"' in html
    assert 'data-ws-path="/ws/events"' in html
    assert "siem/js/hunt.js" in html and "siem/css/hunt.css" in html
    assert "eyJ" not in html and "csrfmiddlewaretoken" not in html
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http" not in html.split("<body", 1)[0].replace("http-equiv", "")  # no CDN


def test_hunting_static_modules_are_served(client):
    for name in ("js/hunt.js", "js/histogram.js", "js/shell.js", "css/hunt.css"):
        assert client.get(f"/static/siem/{name}").status_code == 200, name


def test_the_hunting_page_only_answers_get(client):
    assert client.post("/events/").status_code == 405
