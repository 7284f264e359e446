"""`manage.py sigma_rules --update`: download, check, install, and every engine reloads.

The package is built at test time from ../shared/data/sigma-full (SigmaHQ's layout, one folder
of it to keep the test short) and served by a loopback HTTP server; nothing is copied into the
repository.
"""

from __future__ import annotations

import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from alerts.detection.engine import get_engine
from tests.detection_helpers import DATA, fresh_detection

SOURCE = DATA / "sigma-full" / "rules" / "windows" / "builtin" / "security"


def tar_gz(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname="rules/windows/builtin/security")
    return buffer.getvalue()


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def server():
    """A loopback HTTP server; set `server.packages[path] = bytes` to serve them."""
    packages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = packages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            if body is not None:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.packages = packages
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.SIGMA_RULES_MIN_LOADED = 100
    with fresh_detection(settings, sigma_dir=""):
        yield tmp_path


@pytest.mark.django_db
@pytest.mark.timeout(600)
def test_update_installs_the_package_and_the_engine_reloads_it(server, data_dir, settings):
    server.packages["/sigma.tar.gz"] = tar_gz(SOURCE)
    settings.SIGMA_RULES_URL = server.url + "/sigma.tar.gz"
    assert get_engine().sigma.rules == []  # nothing installed yet
    out = io.StringIO()
    call_command("sigma_rules", "--update", stdout=out)
    expected = len(list(SOURCE.rglob("*.yml")))
    assert f"installed {expected} rules (0 refused)" in out.getvalue()
    current = data_dir / "sigma" / "current"
    assert len(list(current.rglob("*.yml"))) == expected
    assert len(get_engine().sigma.rules) == expected  # DETECTION_CONFIG_TTL_SEC is 0 here

    # A second package replaces it; the engine sees the new version, the old one is kept.
    server.packages["/two.zip"] = zipped(
        {"rules/one.yml": (SOURCE / "win_security_user_logoff.yml").read_text()}
    )
    settings.SIGMA_RULES_MIN_LOADED = 1
    call_command("sigma_rules", "--update", "--url", server.url + "/two.zip", stdout=io.StringIO())
    assert [r.title for r in get_engine().sigma.rules] == ["User Logoff Event"]
    assert len([p for p in (data_dir / "sigma").iterdir() if p.name[:1].isdigit()]) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "package", "reason"),
    [
        ("/missing.zip", None, "HTTP 404"),
        ("/evil.zip", zipped({"../escape.yml": "title: x"}), "unsafe path"),
        ("/junk.tar.gz", b"not an archive", "not a zip or tar.gz"),
        ("/few.zip", zipped({"r.yml": "title: broken"}), "fewer than SIGMA_RULES_MIN_LOADED"),
    ],
)
def test_a_bad_package_is_refused_and_changes_nothing(
    server, data_dir, settings, path, package, reason
):
    if package is not None:
        server.packages[path] = package
    with pytest.raises(CommandError, match=reason):
        call_command("sigma_rules", "--update", "--url", server.url + path, stdout=io.StringIO())
    assert not (data_dir / "sigma" / "current").exists()
    assert not (data_dir.parent / "escape.yml").exists()
