"""Shared fixtures: a few named users with their roles, and an isolated Redis namespace.

Users (password for all: `Passw0rd!x`):
- `admin`    — group admin: everything
- `analyst`  — group analyst: reads all, triages alerts and incidents, creates events
- `viewer`   — group viewer: reads only
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest
from django.contrib.auth.models import Group, User

PASSWORD = "Passw0rd!x"

# A test run started in the background by a non-interactive shell (`make test &`, as .ci/run runs
# its two passes side by side) inherits an ignored SIGINT, and so would every server the tests
# start: their "Ctrl-C" would then be ignored. Tests that press Ctrl-C mean a terminal's.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Fixtures through which a test reaches the database under test (the pass's DATABASE_URL).
DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "live_server",
}


def pytest_collection_modifyitems(config, items):
    """With SIEM_TESTS_DATABASE_ONLY=1 only the tests that use the database under test run.

    CI runs the suite on SQLite, then again on PostgreSQL; the second pass sets this, so that
    what cannot differ between the two — tests without the database (parsers, the Sigma
    matcher against pySigma, settings), and end-to-end tests whose servers bring their own
    SQLite file or their own PostgreSQL database whatever the pass — runs once, not twice. A
    test reaches the pass's database through pytest-django's fixtures or marker, which is what
    is kept; one that reaches it otherwise (e.g. asks for the pass's connection parameters to
    start servers on it) is marked `every_database`."""
    if os.environ.get("SIEM_TESTS_DATABASE_ONLY") != "1":
        return
    kept, dropped = [], []
    for item in items:
        uses_database = (
            item.get_closest_marker("django_db")
            or item.get_closest_marker("every_database")
            or DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        )
        (kept if uses_database else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", autouse=True)
def isolated_redis_namespace():
    """Give this test run its own Redis key prefix, so parallel runs never see each other."""
    from channels.layers import channel_layers
    from django.conf import settings

    prefix = f"siemtest-{uuid.uuid4().hex[:8]}"
    settings.REDIS_KEY_PREFIX = prefix
    layers = {
        name: {**conf, "CONFIG": {**conf.get("CONFIG", {}), "prefix": f"{prefix}:layer"}}
        for name, conf in settings.CHANNEL_LAYERS.items()
    }
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends = {}
    yield prefix
    channel_layers.backends = {}


@pytest.fixture(autouse=True)
def exact_list_counts(monkeypatch):
    """List counts are exact in tests, unless a test sets the estimate threshold itself
    (tests/test_lists_at_scale.py). On PostgreSQL `fast_count` answers with the planner's
    estimate above ESTIMATE_ABOVE rows; a large import rolled back by an earlier test (the
    attack samples, ~7,400 events, twice) leaves the events table's pages — and so that
    estimate — inflated until autovacuum, and a later test's count of 1 read as 11,365."""
    from siem import pagination

    monkeypatch.setattr(pagination, "ESTIMATE_ABOVE", 10**12)


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """MD5 instead of PBKDF2 for the users the tests create in this process (Django's advice for
    test suites): Django's default iterations cost ~0.5 s per user or login here, which was most
    of the setup time of every test with users. Servers the tests start keep the real hasher."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(username: str, role: str | None) -> User:
    user = User.objects.create_user(
        username=username, password=PASSWORD, email=f"{username}@example.test"
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def admin_user(db) -> User:
    return _user("admin", "admin")


@pytest.fixture
def analyst(db) -> User:
    return _user("analyst", "analyst")


@pytest.fixture
def viewer(db) -> User:
    return _user("viewer", "viewer")


@pytest.fixture
def staff(admin_user, analyst, viewer) -> dict[str, User]:
    """The three named users, each allowed into the admin site (staff, not superuser)."""
    for user in (admin_user, analyst, viewer):
        user.is_staff = True
        user.save()
    return {"admin": admin_user, "analyst": analyst, "viewer": viewer}


@pytest.fixture
def broadcasts(monkeypatch):
    """Messages the server actually sends to Redis, as (group, message) pairs
    (group `siem.<channel>`).

    A spy, not a mock: every call still goes through to the real Redis. Use it
    with `django_capture_on_commit_callbacks(execute=True)` to see what a write broadcasts once
    its transaction commits (Zulip's `capture_send_event_calls`).
    """
    import json

    from realtime.manager import REVOKE, ConnectionManager, group_name

    sent: list[tuple[str, dict]] = []
    original_sync, original_async = ConnectionManager._send_sync, ConnectionManager._send

    def record(sends) -> None:
        # The manager ships the JSON text clients receive (serialized once per write).
        sent.extend(
            (group_name(route), json.loads(text)) for route, text in sends if route != REVOKE
        )

    def spy_sync(self, sends, **kwargs):
        record(sends)
        return original_sync(self, sends, **kwargs)

    async def spy_async(self, sends):
        record(sends)
        return await original_async(self, sends)

    monkeypatch.setattr(ConnectionManager, "_send_sync", spy_sync)
    monkeypatch.setattr(ConnectionManager, "_send", spy_async)
    return sent


# --- REST API tests (tests/test_api_*.py; helpers in tests/api_helpers.py) -------------------
@pytest.fixture
def norole(db) -> User:
    """A logged-in user in no role group: 403 on every data endpoint."""
    return _user("norole", None)


@pytest.fixture
def clients(admin_user, analyst, viewer, norole):
    """An API client per caller: admin, analyst, viewer, norole, anonymous, agent."""
    from tests.api_helpers import clients_for

    return clients_for(admin_user, analyst, viewer, norole)


@pytest.fixture
def api_setup(django_db_blocker):
    """No failed logins counted (this run's own Redis prefix) and the role groups present (a
    transactional test before this one may have flushed them). Password hashing is fast for the
    whole test process (`fast_password_hashing`)."""
    from accounts.roles import ROLES
    from tests.api_helpers import wipe_login_throttle

    with django_db_blocker.unblock():
        for name in ROLES:
            Group.objects.get_or_create(name=name)
    wipe_login_throttle()
    yield
    wipe_login_throttle()
