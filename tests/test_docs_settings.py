"""Docs match the code: every setting read from the environment is documented."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_environment_variable_the_settings_read_is_documented():
    source = (ROOT / "siem" / "settings.py").read_text()
    names = set(re.findall(r'env_(?:int|bool|str|list)\(\s*"([A-Z][A-Z0-9_]+)"', source))
    names |= set(re.findall(r'os\.environ(?:\.get)?\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert len(names) > 50  # the patterns still find the settings
    docs = (ROOT / "README.md").read_text() + "".join(
        path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))
    )
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", docs))
    assert sorted(names - documented) == []
