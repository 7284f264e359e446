"""Failed logins under real concurrency: many threads against a live server, real Redis.

Check and count are one Redis script (siem/throttle.py), so N simultaneous wrong passwords for
one user from one address get at most LOGIN_FAILURE_LIMIT answers of 401, the rest 429.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import httpx
import pytest

from tests.api_helpers import wipe_login_throttle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("api_setup")]

ATTEMPTS = 36


def test_concurrent_wrong_logins_for_one_user_get_at_most_the_limit_of_401s(
    live_server, admin_user, settings
):
    settings.LOGIN_FAILURE_LIMIT = 5
    # Django's real (slow) hasher: every let-through attempt spends long in `authenticate`,
    # which is exactly the window a check-then-count throttle loses.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    wipe_login_throttle()
    start = Barrier(ATTEMPTS)

    def attempt(_n: int) -> int:
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            start.wait()
            return client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": "wrong"}
            ).status_code

    with ThreadPoolExecutor(max_workers=ATTEMPTS) as pool:
        codes = list(pool.map(attempt, range(ATTEMPTS)))
    assert set(codes) <= {401, 429}, codes
    assert codes.count(401) <= settings.LOGIN_FAILURE_LIMIT, codes
    assert codes.count(429) >= ATTEMPTS - settings.LOGIN_FAILURE_LIMIT
    # And the right password from that address is refused until the window ends.
    response = httpx.post(
        f"{live_server.url}/api/v1/auth/login",
        json={"username": "admin", "password": "Passw0rd!x"},
        timeout=60,
    )
    assert response.status_code == 429


def test_concurrent_wrong_enrollment_keys_get_at_most_the_limit_of_403s(live_server, settings):
    settings.AGENT_ENROLLMENT_KEY = "right-key-" + "k" * 30
    settings.ENROLLMENT_FAILURE_LIMIT = 4
    start = Barrier(ATTEMPTS)

    def attempt(n: int) -> int:
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            start.wait()
            return client.post(
                "/api/v1/agents/register/",
                json={"enrollment_key": f"guess-{n}", "hostname": f"H-{n}"},
            ).status_code

    with ThreadPoolExecutor(max_workers=ATTEMPTS) as pool:
        codes = list(pool.map(attempt, range(ATTEMPTS)))
    assert set(codes) <= {403, 429}, codes
    assert codes.count(403) <= 4, codes
