"""Wrong enrollment keys are counted per client address (siem/throttle.py, shared by every
process through Redis).

After ENROLLMENT_FAILURE_LIMIT wrong keys from one address within ENROLLMENT_FAILURE_WINDOW_SEC,
that address gets 429 (with Retry-After) on enrollment — even with the right key — until the
window ends, so nobody can guess the key at the server's speed. Each attempt is charged before
the key is compared (atomically, so concurrent guesses cannot slip past the limit) and a right
key refunds its own charge only. Redis down: enrollment is allowed and a warning logged (agents
must be able to enroll while Redis recovers; the key is long and random).
"""

from __future__ import annotations

from django.conf import settings

from siem.throttle import Blocked, Charge, FailureThrottle, Scope


def _throttle() -> FailureThrottle:
    return FailureThrottle(
        "enroll-fail", settings.ENROLLMENT_FAILURE_WINDOW_SEC, label="Enrollment"
    )


def attempt(client_ip: str | None) -> Blocked | Charge:
    """Charge one enrollment attempt from this address; Blocked (429) once at the limit."""
    throttle = _throttle()
    scope = Scope("address", throttle.key("ip", client_ip or "unknown"), _limit())
    return throttle.charge([scope])


def succeeded(charge: Charge) -> None:
    _throttle().forgive(charge)


def _limit() -> int:
    return settings.ENROLLMENT_FAILURE_LIMIT
