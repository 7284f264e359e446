"""POST /api/v1/auth/login, /logout, GET /me; token validation on every request; throttling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Session
from accounts.services import issue_access_token
from tests.api_helpers import bearer_client
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

LOGIN = "/api/v1/auth/login"


def login(client: APIClient, username: str, password: str = PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, format="json", **extra)


def test_login_returns_exactly_the_guide_shape_and_a_working_token(admin_user, settings):
    response = login(APIClient(), "admin")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.JWT_ACCESS_TOKEN_LIFETIME_SEC == 28800
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert client.get("/api/v1/auth/me").json()["username"] == "admin"


def test_login_writes_a_session_row_with_client_ip_and_user_agent(analyst):
    response = login(
        APIClient(), "analyst", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="curl/8.5 soc-script"
    )
    jti = AccessToken(response.json()["access_token"])["jti"]
    session = Session.objects.get(jti=jti)
    assert session.user == analyst
    assert session.client_ip == "10.1.2.3"
    assert session.user_agent == "curl/8.5 soc-script"
    assert session.is_active
    analyst.refresh_from_db()
    assert analyst.last_login is not None


def test_login_path_works_without_trailing_slash_and_with_it(viewer):
    assert login(APIClient(), "viewer").status_code == 200
    response = APIClient().post(
        LOGIN + "/", {"username": "viewer", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("username", "password"), [("admin", "wrong-password"), ("nobody", PASSWORD)]
)
def test_login_with_bad_credentials_is_401_without_a_token(admin_user, username, password):
    response = login(APIClient(), username, password)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid username or password."}
    assert not Session.objects.exists()


def test_inactive_user_cannot_log_in(analyst):
    analyst.is_active = False
    analyst.save()
    assert login(APIClient(), "analyst").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [({"username": "admin"}, "password"), ({"password": PASSWORD}, "username")],
)
def test_login_with_a_missing_field_is_400_naming_it(admin_user, body, field):
    response = APIClient().post(LOGIN, body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_login_with_malformed_json_is_400_not_500(admin_user):
    response = APIClient().post(LOGIN, '{"username": "admin",', content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_repeated_failures_for_one_username_are_throttled_even_with_the_right_password(
    admin_user, settings
):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        assert login(APIClient(), "admin", "wrong").status_code == 401
    response = login(APIClient(), "admin")
    assert response.status_code == 429
    assert "Too many failed login attempts" in response.json()["detail"]
    assert 0 < int(response["Retry-After"]) <= settings.LOGIN_FAILURE_WINDOW_SEC
    # Another user from another address is not affected.
    assert login(APIClient(), "admin2-missing", "x", REMOTE_ADDR="10.9.9.9").status_code == 401


def test_the_user_and_address_lock_ignores_case_and_spares_other_addresses(admin_user, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    login(APIClient(), "Admin", "wrong", REMOTE_ADDR="10.0.0.1")
    login(APIClient(), "admin", "wrong", REMOTE_ADDR="10.0.0.1")
    assert login(APIClient(), "admin", REMOTE_ADDR="10.0.0.1").status_code == 429
    # Locking on (user, address) first: a guesser cannot lock the real user out elsewhere.
    assert login(APIClient(), "admin", REMOTE_ADDR="10.0.0.2").status_code == 200


def test_the_user_alone_is_locked_only_at_the_much_higher_user_limit(admin_user, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    settings.LOGIN_FAILURE_USER_LIMIT = 6
    for n in range(6):  # a distributed guess: 6 addresses, 1 try each
        assert login(APIClient(), "admin", "wrong", REMOTE_ADDR=f"10.1.0.{n}").status_code == 401
    response = login(APIClient(), "admin", REMOTE_ADDR="10.1.0.99")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_the_failure_that_starts_a_lockout_is_audited_without_the_typed_name_of_a_stranger(
    admin_user, settings, caplog
):
    from accounts.models import AuditLog

    settings.LOGIN_FAILURE_LIMIT = 2
    for name in ("admin", "admin", "hunter2-typed-as-name", "hunter2-typed-as-name"):
        login(APIClient(), name, "wrong", REMOTE_ADDR="10.2.0.1")
    entries = list(AuditLog.objects.filter(action="login.lockout").order_by("id"))
    assert [(e.target_id, e.details["scopes"], e.ip_address) for e in entries] == [
        ("admin", ["user and address"], "10.2.0.1"),
        ("", ["user and address"], "10.2.0.1"),
    ]
    assert "Failed login for user 'admin' from 10.2.0.1" in caplog.text
    assert "hunter2" not in caplog.text  # no such user: a password typed into the wrong field
    assert "Failed login for user (no such user) from 10.2.0.1" in caplog.text


def test_one_address_spraying_many_usernames_is_throttled(admin_user, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    settings.LOGIN_FAILURE_IP_LIMIT = 4
    for name in ("u1", "u2", "u3", "u4"):
        assert login(APIClient(), name, "wrong", REMOTE_ADDR="10.6.6.6").status_code == 401
    assert login(APIClient(), "admin", REMOTE_ADDR="10.6.6.6").status_code == 429
    assert login(APIClient(), "admin", REMOTE_ADDR="10.7.7.7").status_code == 200


def test_a_successful_login_clears_the_username_counter(admin_user, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    login(APIClient(), "admin", "wrong")
    login(APIClient(), "admin", "wrong")
    assert login(APIClient(), "admin").status_code == 200
    login(APIClient(), "admin", "wrong")
    login(APIClient(), "admin", "wrong")
    assert login(APIClient(), "admin").status_code == 200


def test_me_returns_username_and_role_for_each_role(clients):
    expected = {"admin": "admin", "analyst": "analyst", "viewer": "viewer", "norole": None}
    for caller, role in expected.items():
        response = clients[caller].get("/api/v1/auth/me")
        assert response.status_code == 200
        assert response.json()["username"] == caller
        assert response.json()["role"] == role


def test_superuser_counts_as_admin(db, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.test", PASSWORD)
    body = bearer_client(root).get("/api/v1/auth/me").json()
    assert body["role"] == "admin"
    assert body["is_superuser"] is True


@pytest.mark.parametrize("caller", ["anonymous", "agent"])
def test_me_and_logout_refuse_callers_without_a_user_token(clients, caller):
    assert clients[caller].get("/api/v1/auth/me").status_code == 401
    assert clients[caller].post("/api/v1/auth/logout").status_code == 401


def test_logout_revokes_the_session_and_the_token_is_refused_afterwards(viewer):
    token, session = issue_access_token(viewer)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.post("/api/v1/auth/logout").status_code == 204
    session.refresh_from_db()
    assert session.revoked_at is not None
    assert session.revoked_reason == "logout"
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token"


def test_logout_revokes_only_this_token(viewer):
    first, second = bearer_client(viewer), bearer_client(viewer)
    assert first.post("/api/v1/auth/logout/").status_code == 204
    assert second.get("/api/v1/auth/me").status_code == 200


def test_a_token_revoked_by_an_admin_is_refused(viewer):
    token, session = issue_access_token(viewer)
    Session.objects.filter(pk=session.pk).update(revoked_at=timezone.now())
    response = APIClient().get("/api/v1/events/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


def test_an_inactive_users_token_is_refused(analyst):
    client = bearer_client(analyst)
    assert client.get("/api/v1/events/").status_code == 200
    analyst.is_active = False
    analyst.save()
    assert client.get("/api/v1/events/").status_code == 401


def test_an_expired_token_is_refused(viewer):
    token = AccessToken.for_user(viewer)
    token.set_exp(lifetime=timedelta(seconds=-1))
    Session.objects.create(
        jti=token["jti"], user=viewer, expires_at=timezone.now() + timedelta(hours=1)
    )
    response = APIClient().get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


def test_a_token_without_a_session_row_is_refused(viewer):
    token = AccessToken.for_user(viewer)  # signed correctly but never issued by login
    response = APIClient().get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer not.a.jwt", "Bearer a b", "Bearer eyJhbGciOiJub25lIn0.e30."]
)
def test_malformed_bearer_headers_are_401(viewer, header):
    response = APIClient().get("/api/v1/auth/me", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_token_signed_with_another_key_is_refused(viewer, settings):
    from rest_framework_simplejwt.backends import TokenBackend

    token, _session = issue_access_token(viewer)
    claims = AccessToken(token).payload
    forged = TokenBackend("HS256", signing_key="attacker-key-" * 4).encode(claims)
    response = APIClient().get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401


def test_admin_action_revokes_selected_sessions(client, django_user_model, viewer):
    root = django_user_model.objects.create_superuser("root", "root@example.test", PASSWORD)
    token, session = issue_access_token(viewer)
    _other_token, other = issue_access_token(viewer)
    client.force_login(root)
    changelist = client.get("/admin/accounts/session/")
    assert changelist.status_code == 200
    assert b"Revoke selected sessions" in changelist.content
    response = client.post(
        "/admin/accounts/session/",
        {"action": "revoke_selected", "_selected_action": [session.pk], "index": 0},
        follow=True,
    )
    assert b"Revoked 1 session(s)." in response.content
    session.refresh_from_db()
    other.refresh_from_db()
    assert (session.revoked_reason, other.revoked_at) == ("revoked by admin", None)
    refused = APIClient().get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 401


def test_staff_without_change_permission_cannot_revoke_sessions(client, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password=PASSWORD, is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(codename="view_session", content_type__app_label="accounts")
    )
    client.force_login(staff)
    response = client.get("/admin/accounts/session/")
    assert response.status_code == 200
    assert b"Revoke selected sessions" not in response.content


def test_login_still_works_when_redis_is_unreachable(admin_user, settings, caplog):
    # A real, closed port: the throttle cannot count, and logins must not depend on it.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert login(APIClient(), "admin", "wrong").status_code == 401
    assert login(APIClient(), "admin").status_code == 200
    assert "Login throttle unavailable" in caplog.text
