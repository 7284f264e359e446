"""Migrations are complete and create the three role groups; roles resolve as SPEC says."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from accounts.roles import get_role


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_role_groups_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {"admin", "analyst", "viewer"}


@pytest.mark.django_db
def test_roles_resolve_with_superuser_as_admin(admin_user, analyst, viewer):
    root = User.objects.create_superuser("root", "", "x")
    nobody = User.objects.create_user("nobody", password="x")
    assert [get_role(u) for u in (admin_user, analyst, viewer, root, nobody)] == [
        "admin",
        "analyst",
        "viewer",
        "admin",
        None,
    ]
    viewer.groups.add(Group.objects.get(name="analyst"))
    assert get_role(viewer) == "analyst"  # the strongest role wins
