"""Failed-login throttling (siem/throttle.py), shared by every server process through Redis.

Three counters per LOGIN_FAILURE_WINDOW_SEC, all charged atomically before the password is
checked:
- (user name, address), LOGIN_FAILURE_LIMIT (5): someone guessing one account from one place;
- user name from any address, LOGIN_FAILURE_USER_LIMIT (10 x): a distributed guess. Much higher,
  so that nobody can lock a colleague out from one address (django-axes and Wazuh lock on
  user and address first, for the same reason);
- address, LOGIN_FAILURE_IP_LIMIT (4 x): one address spraying many names.
Once a counter is at its limit, every attempt it covers gets 429 until its window ends, even
with the right password, or guessing would simply go on. A success refunds its own charge and
clears its (user, address) and user counters, never the address counter: one valid account must
not reset a password-spraying run. User names are compared case-insensitively and hashed.

Redis down: attempts are allowed (and a warning is logged). Logins depend on the database, not
Redis, and locking every analyst out during a Redis outage would be worse than a short window
without throttling.
"""

from __future__ import annotations

from django.conf import settings

from siem.throttle import Blocked, Charge, FailureThrottle, Scope

USER_AND_ADDRESS, USER, ADDRESS = "user and address", "user", "address"


def _throttle() -> FailureThrottle:
    return FailureThrottle("login-fail", settings.LOGIN_FAILURE_WINDOW_SEC, label="Login")


def _scopes(throttle: FailureThrottle, username: str, client_ip: str | None) -> list[Scope]:
    name, address = username.strip().lower(), client_ip or "unknown"
    return [
        Scope(USER_AND_ADDRESS, throttle.key("pair", name, address), settings.LOGIN_FAILURE_LIMIT),
        Scope(USER, throttle.key("user", name), settings.LOGIN_FAILURE_USER_LIMIT),
        Scope(ADDRESS, throttle.key("ip", address), settings.LOGIN_FAILURE_IP_LIMIT),
    ]


def attempt(username: str, client_ip: str | None) -> Blocked | Charge:
    """Charge one login attempt; Blocked (429) if a counter is already at its limit."""
    throttle = _throttle()
    return throttle.charge(_scopes(throttle, username, client_ip))


def succeeded(charge: Charge) -> None:
    _throttle().forgive(charge, clear=(USER_AND_ADDRESS, USER))
