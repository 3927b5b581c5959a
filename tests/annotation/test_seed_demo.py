"""seed_demo: published passwords only where DEBUG is on (or by an explicit flag), and never over an
existing account."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.management.commands.seed_demo import DEMO_PROJECT, DEMO_USERS
from annotation.models import Membership, Project

pytestmark = pytest.mark.django_db


def test_refuses_without_debug_and_creates_nothing(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--allow-production"):
        call_command("seed_demo")
    assert not Project.objects.filter(name=DEMO_PROJECT).exists()
    assert not get_user_model().objects.exists()


def test_runs_without_debug_with_the_explicit_flag(settings, capsys):
    settings.DEBUG = False
    call_command("seed_demo", "--allow-production")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(DEMO_USERS[0][1])
    assert "admin-demo-password" in capsys.readouterr().out


def test_never_changes_an_existing_user(settings, capsys):
    settings.DEBUG = True
    real = get_user_model().objects.create_user("admin", "ops@example.org", "a-real-secret-passphrase")
    call_command("seed_demo")
    real.refresh_from_db()
    assert real.check_password("a-real-secret-passphrase")
    assert not real.is_superuser and not real.is_staff and real.email == "ops@example.org"
    # No membership was forced on the existing account; the new demo users got theirs.
    assert not Membership.objects.filter(user=real).exists()
    assert Membership.objects.filter(user__username="alice", project__name=DEMO_PROJECT).exists()
    out = capsys.readouterr().out
    assert "admin-demo-password" not in out and "left unchanged: admin" in out
    # Run again: nothing about the users changes, the labelers' passwords included.
    alice = get_user_model().objects.get(username="alice")
    alice.set_password("alice-changed-it")
    alice.save()
    call_command("seed_demo")
    alice.refresh_from_db()
    assert alice.check_password("alice-changed-it")
