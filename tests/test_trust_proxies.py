"""`X-Forwarded-For` counts only from TRUSTED_PROXIES (SPEC "Operations"), for HTTP requests and
WebSocket handshakes alike (siem/client_address.py), and `runsiem` no longer lets daphne
believe it."""

from __future__ import annotations

import inspect

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from siem.client_address import client_ip, resolve, scope_client_ip


@pytest.mark.parametrize(
    ("trusted", "peer", "header", "client"),
    [
        ([], "203.0.113.5", "198.51.100.1", "203.0.113.5"),  # no proxies trusted: the peer
        (["10.0.0.0/8"], "203.0.113.5", "198.51.100.1", "203.0.113.5"),  # untrusted peer
        (["10.0.0.0/8"], "10.0.0.2", "198.51.100.1", "198.51.100.1"),
        # The client's own forged hop is left of what our proxy appended: ignored.
        (["10.0.0.0/8"], "10.0.0.2", "1.2.3.4, 198.51.100.1", "198.51.100.1"),
        # Two trusted hops (load balancer, then nginx) are skipped.
        (["10.0.0.0/8", "127.0.0.1"], "127.0.0.1", "198.51.100.1, 10.0.0.7", "198.51.100.1"),
        (["127.0.0.1"], "127.0.0.1", "garbage", "127.0.0.1"),  # malformed: stop at the proxy
        (["127.0.0.1"], "127.0.0.1", None, "127.0.0.1"),
        (["::1"], "::1", "2001:db8::7", "2001:db8::7"),
        (["127.0.0.1"], "127.0.0.1", "198.51.100.1:5123", "198.51.100.1"),
    ],
)
def test_the_client_address_believes_forwarded_for_only_from_trusted_proxies(
    settings, trusted, peer, header, client
):
    settings.TRUSTED_PROXIES = trusted
    assert resolve(peer, header) == client


def test_requests_and_websocket_scopes_are_decided_by_the_same_rule(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    request = RequestFactory().get(
        "/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9"
    )
    scope = {
        "type": "websocket",
        "client": ("127.0.0.1", 50000),
        "headers": [(b"x-forwarded-for", b"198.51.100.9")],
    }
    assert client_ip(request) == scope_client_ip(scope) == "198.51.100.9"
    settings.TRUSTED_PROXIES = []
    assert client_ip(request) == scope_client_ip(scope) == "127.0.0.1"


def test_a_bad_trusted_proxies_value_stops_the_settings(monkeypatch):
    import importlib

    import siem.settings as module

    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8,not-an-address")
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        importlib.reload(module)
    monkeypatch.delenv("TRUSTED_PROXIES")
    importlib.reload(module)


def test_runsiem_does_not_start_daphne_with_proxy_headers():
    from siem.management.commands import runsiem

    source = inspect.getsource(runsiem.Command.start_children)
    assert '"--proxy-headers"' not in source
