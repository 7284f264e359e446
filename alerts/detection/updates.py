"""Rule updates the way Wazuh and Elastic users get them: download, check, install, reload.

`manage.py sigma_rules --update` calls `update_rules()`:

1. Download the rule package from `SIGMA_RULES_URL` (a zip or tar.gz as SigmaHQ publishes its
   release packages; any mirror serving the same format will do), at most
   `SIGMA_RULES_MAX_BYTES`.
2. Check it: every member stays inside the package (no absolute paths, no `..`, no links), and
   the rules it holds load (`load_rules`): at least `SIGMA_RULES_MIN_LOADED` of them, else the
   package is refused and nothing changes.
3. Install it under `SIEM_DATA_DIR/sigma/<timestamp>` and point `SIEM_DATA_DIR/sigma/current`
   at it (an atomic rename of a symlink), keeping the previous version for a rollback.
4. Reload every process: the engines watch their rules directory's files (names, sizes, mtimes)
   every `DETECTION_CONFIG_TTL_SEC`; `current` now resolves to other files, so every worker and
   server process reloads within seconds, without a restart or a broadcast.

`SIGMA_RULES_DIR` wins when set; otherwise the engine reads `SIEM_DATA_DIR/sigma/current` if an
update installed one (`installed_rules_dir()`).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import httpx
from django.conf import settings

from alerts.detection.sigma import RuleFilter, load_rules


class UpdateError(Exception):
    """The package could not be fetched or failed its checks; the installed rules are kept."""


@dataclass
class UpdateResult:
    directory: Path
    loaded: int
    refused: int


def rules_root() -> Path:
    return Path(settings.DATA_DIR) / "sigma"


def installed_rules_dir() -> str:
    """The rules an update installed ('' if none)."""
    current = rules_root() / "current"
    return str(current) if current.is_dir() else ""


def download(url: str) -> bytes:
    limit = settings.SIGMA_RULES_MAX_BYTES
    with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
        if response.status_code != 200:
            raise UpdateError(f"{url}: HTTP {response.status_code}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise UpdateError(f"{url}: larger than SIGMA_RULES_MAX_BYTES ({limit})")
    return bytes(body)


def _safe(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts


def extract(package: bytes, target: Path) -> None:
    """Unpack a zip or tar.gz into `target`, refusing anything that would land outside it."""
    if zipfile.is_zipfile(io.BytesIO(package)):
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            for member in archive.infolist():
                if not _safe(member.filename):
                    raise UpdateError(f"unsafe path in package: {member.filename!r}")
            archive.extractall(target)  # noqa: S202 - every member checked above
        return
    try:
        archive = tarfile.open(fileobj=io.BytesIO(package), mode="r:*")
    except tarfile.TarError as exc:
        raise UpdateError(f"not a zip or tar.gz package: {exc}") from exc
    with archive:
        for member in archive.getmembers():
            if not _safe(member.name) or not (member.isfile() or member.isdir()):
                raise UpdateError(f"unsafe member in package: {member.name!r}")
        archive.extractall(target, filter="data")


def update_rules(url: str | None = None) -> UpdateResult:
    """Steps 1-4 of the module docstring; raises UpdateError and changes nothing on failure."""
    url = url or settings.SIGMA_RULES_URL
    if not url:
        raise UpdateError("no SIGMA_RULES_URL set")
    package = download(url)
    root = rules_root()
    root.mkdir(parents=True, exist_ok=True)
    version = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S%f")
    staging = root / f".staging-{version}"
    try:
        extract(package, staging)
        ruleset = load_rules(staging, RuleFilter.from_settings())
        loaded = len(ruleset.rules) + len(ruleset.correlations)
        refused = sum(1 for entry in ruleset.entries if entry.error)
        if loaded < settings.SIGMA_RULES_MIN_LOADED:
            raise UpdateError(
                f"package loads {loaded} rules, fewer than SIGMA_RULES_MIN_LOADED "
                f"({settings.SIGMA_RULES_MIN_LOADED}); not installed"
            )
        final = root / version
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    link = root / f".current-{version}"
    link.symlink_to(final.name)
    os.replace(link, root / "current")  # atomic: readers see the old or the new version
    for old in sorted(p for p in root.iterdir() if p.is_dir() and p.name[:1].isdigit())[:-2]:
        shutil.rmtree(old, ignore_errors=True)  # keep this version and the one before
    return UpdateResult(final, loaded, refused)
