"""Domain errors raised by services and understood by every caller (API, admin, commands)."""

from __future__ import annotations


class InvalidTransition(Exception):
    """A status change that the workflow does not allow, e.g. resolving a resolved alert."""

    def __init__(self, kind: str, obj_id: object, current: str, target: str, reason: str = ""):
        current, target = str(current), str(target)  # plain values, not enum reprs
        self.kind, self.obj_id, self.current, self.target = kind, obj_id, current, target
        message = f"{kind} {obj_id} is {current!r}; cannot change to {target!r}"
        if reason:
            message += f": {reason}"
        super().__init__(message)
