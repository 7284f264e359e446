from __future__ import annotations

from accounts.api import users, views
from siem.api_common import route

urlpatterns = [
    route("auth/login", views.LoginView.as_view(), "auth-login"),
    route("auth/logout", views.LogoutView.as_view(), "auth-logout"),
    route("auth/me", views.MeView.as_view(), "auth-me"),
    route("users", users.UserListView.as_view(), "user-list"),
]
