"""The skeleton alerts and incidents share: a timeline row, a comment, and how to write them.

Both apps record every change as a row of who, what, from which status, and when
(`TimelineEntry`), and both take free-text comments (`Comment`). The concrete models add only
the foreign key to their alert or incident, as NetBox's `ChangeLoggedModel` does for its apps.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from siem.activity import actor_label, actor_user


class TimelineEntry(models.Model):
    """Audit trail: who changed what, when, and from which status."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_name = models.CharField(
        max_length=150, blank=True, help_text="User name, or the system component."
    )
    action = models.CharField(max_length=32)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]


class Comment(models.Model):
    """A note an analyst leaves on an alert or incident; the author's name survives the user."""

    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]


def write_comment(model: type[Comment], *, actor, text: str, **owner) -> Comment:
    """One comment of `model` (owner names its alert or incident), written by `actor`."""
    return model.objects.create(
        author=actor_user(actor), author_name=actor_label(actor), text=text, **owner
    )


def log_entry(model: type[TimelineEntry], *, actor, action: str, status: str, **fields):
    """One timeline row of `model` (fields name its alert or incident), written by `actor`."""
    return model.objects.create(
        actor=actor_user(actor),
        actor_name=actor_label(actor),
        action=action,
        to_status=status,
        **fields,
    )
