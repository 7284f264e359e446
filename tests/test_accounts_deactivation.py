"""Deactivating a user ends their sessions at once: tokens refused, open sockets told to close."""

from __future__ import annotations

import pytest

from accounts.models import Session
from accounts.services import issue_access_token
from accounts.tokens import InvalidToken, validate_access_token


@pytest.mark.django_db
def test_deactivating_a_user_revokes_every_session_and_notifies_sockets(
    analyst, django_capture_on_commit_callbacks, monkeypatch
):
    from realtime.manager import get_connection_manager

    revoked: list[list[str]] = []
    manager = get_connection_manager()
    original = manager.revoke_sessions
    monkeypatch.setattr(
        manager, "revoke_sessions", lambda jtis: revoked.append(list(jtis)) or original(jtis)
    )
    token_a, session_a = issue_access_token(analyst)
    _token_b, session_b = issue_access_token(analyst)
    with django_capture_on_commit_callbacks(execute=True):
        analyst.is_active = False
        analyst.save()
    assert Session.objects.active().filter(user=analyst).count() == 0
    assert Session.objects.get(pk=session_a.pk).revoked_reason == "user deactivated"
    assert sorted(revoked[0]) == sorted([session_a.jti, session_b.jti])
    with pytest.raises(InvalidToken):
        validate_access_token(token_a)


@pytest.mark.django_db
def test_saving_an_active_user_leaves_sessions_alone(analyst):
    _token, session = issue_access_token(analyst)
    analyst.first_name = "Ana"
    analyst.save()
    assert Session.objects.get(pk=session.pk).revoked_at is None
