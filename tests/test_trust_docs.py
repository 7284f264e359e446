"""`/api/v1/docs/` works offline (issue 13, item 7): every asset is ours and loads, under the
same Content-Security-Policy as the dashboard."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.test import Client


def _page():
    return Client().get("/api/v1/docs/")


def test_the_docs_page_references_no_external_host():
    page = _page()
    assert page.status_code == 200
    html = page.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html
    for url in urls:
        assert not urlsplit(url).netloc, url  # same origin: no CDN
    assert "<script>" not in html and "<style>" not in html  # nothing inline for the CSP to block


def test_every_asset_of_the_docs_page_loads_from_this_server():
    html = _page().content.decode()
    client = Client()
    loaded = []
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        response = client.get(url.replace("&amp;", "&"))
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert len(body) > 100, url
        loaded.append(url)
    assert any(u.endswith("swagger-ui-bundle.js") for u in loaded)
    assert any(u.endswith("swagger-ui.css") for u in loaded)
    assert any("script=" in u for u in loaded)


def test_the_docs_page_is_served_under_the_dashboards_csp():
    policy = _page()["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "default-src 'self'" in policy
