"""The alert page names the Sigma rules folded into a built-in alert (headless Chromium, real
daphne and Redis, alerts raised by the real ingest and detection path with the Sigma rules of
../shared/data/sigma).

Users (password `Passw0rd!x`, created in the server's own database): `analyst`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser_support import CHROMIUM, ROOT, LiveServer, browser, open_page  # noqa: F401
from tests.test_browser_cases import sign_in_at

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

CAPTURE = ROOT.parent / "shared/data/windows/attacks/eas_credaccess_latmove_security.jsonl"
SIGMA = ROOT.parent / "shared/data/sigma"


@pytest.fixture(scope="module")
def server():
    srv = LiveServer()
    srv.env["SIGMA_RULES_DIR"] = str(SIGMA)
    srv.prepare()
    srv.manage("import_events", str(CAPTURE), timeout=600)  # ingest → detection → alerts
    srv.start()
    yield srv
    srv.cleanup()


def test_the_dcsync_alert_page_lists_the_sigma_rule_that_saw_the_same_events(server, request):
    token = server.login("analyst")
    found = server.api("GET", "/alerts/?search=builtin.dcsync&page_size=100", token).json()
    dcsync = next(row for row in found["results"] if row["rule_id"] == "builtin.dcsync")
    detail = server.api("GET", f"/alerts/{dcsync['alert_id']}/", token).json()
    [also] = detail["also_matched_by"]
    assert (also["name"], also["source"]) == ("Mimikatz DC Sync", "sigma")
    assert len(also["event_ids"]) == 3

    page = request.getfixturevalue("open_page")()  # the cases pages' fixture (imported)
    sign_in_at(page, f"{server.url}/alerts/{dcsync['alert_id']}/")
    rule = page.locator("#rule")
    expect(rule).to_contain_text("Also matched by")
    expect(rule).to_contain_text(f"Mimikatz DC Sync (Sigma, {also['level']}, 3 events)")
    expect(rule).to_contain_text(also["id"])
