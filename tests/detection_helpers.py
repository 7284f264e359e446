"""What the detection tests share: where the real data is, and a clean engine per test."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import redis
from django.conf import settings as django_settings

from alerts.detection.engine import reset_engine

DATA = Path(django_settings.BASE_DIR).parent / "shared" / "data"
SIGMA_DIR = DATA / "sigma"


def forget_windows(pattern: str = "detect:*") -> None:
    """Event ids restart with each test database: drop this run's window state in Redis."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    keys = list(client.scan_iter(f"{django_settings.REDIS_KEY_PREFIX}:{pattern}", count=1000))
    if keys:
        client.delete(*keys)


@contextmanager
def fresh_detection(
    settings, *, sigma_dir: str, config_ttl: int | None = 0, pattern: str = "detect:*"
):
    """Own Redis window keys and a reloaded engine for one test (`settings`: pytest-django's)."""
    forget_windows(pattern)
    settings.SIGMA_RULES_DIR = sigma_dir
    if config_ttl is not None:
        settings.DETECTION_CONFIG_TTL_SEC = config_ttl
    reset_engine()
    try:
        yield
    finally:
        forget_windows(pattern)
        reset_engine()
