"""Who did it: the acting user, or the system component that made a change."""

from __future__ import annotations


def actor_label(actor, system: str = "system") -> str:
    if actor is None:
        return system
    if isinstance(actor, str):
        return actor
    return actor.get_username()


def actor_user(actor):
    """The user object, if the actor is one (components are recorded by name only)."""
    return None if actor is None or isinstance(actor, str) else actor
