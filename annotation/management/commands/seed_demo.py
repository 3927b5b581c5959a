from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation.models import Membership, Project
from annotation.models.projects import Role
from annotation.services.prompts import prompts_import

DEMO_PROMPTS = Path(__file__).resolve().parents[2] / "demo" / "prompts.jsonl"
DEMO_PROJECT = "Demo: helpful assistant"
DEMO_GUIDELINES = """\
## What a good answer looks like

- **Helpful**: it does what the user asked, in the form they asked for.
- **Honest**: no made-up facts; say so when unsure.
- **Harmless**: no dangerous advice, nothing demeaning.

When ranking, put the answer you would most like an assistant to give first. Tie two answers
only when you truly cannot choose. Flag every problem you see, even in the best answer.
"""
# Embedded demo only: fixed, printed credentials so a fresh machine is usable at once.
DEMO_USERS = [
    ("admin", "admin-demo-password", Role.ADMIN, True),
    ("alice", "alice-demo-password", Role.LABELER, False),
    ("bob", "bob-demo-password", Role.LABELER, False),
]


class Command(BaseCommand):
    help = (
        "Create the demo project with its prompts, an admin and two labelers (safe to run again). "
        "Only with DEBUG on or --allow-production; existing users are never changed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Run even with DEBUG off: creates a superuser 'admin' with a published password.",
        )

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        # The demo admin's password is printed in the README: on a production database it is a
        # superuser anyone can log in as, so it takes an explicit flag there.
        if not settings.DEBUG and not options["allow_production"]:
            raise CommandError(
                "seed_demo creates accounts with published passwords; it runs only with DEBUG on "
                "(or pass --allow-production to accept that)."
            )
        project, created = Project.objects.get_or_create(
            name=DEMO_PROJECT,
            defaults={
                "description": "Sixty everyday prompts to try the platform end to end.",
                "guidelines": DEMO_GUIDELINES,
                "k": 4,
                "rankings_per_prompt": 2,
                "demonstrations_per_prompt": 1,
                # 96 tokens cut off 14 of 40 demo answers mid-sentence; 256 cut off 4 of 40 (mean
                # answer 85 tokens, about 1 s each with the packaged model).
                "max_tokens": 256,
                "stop_sequences": ["\nQuestion:", "\n\n\n"],
                "retrain_min_new_comparisons": 60,
            },
        )
        report = prompts_import(
            project=project, content=DEMO_PROMPTS.read_bytes(), filename=DEMO_PROMPTS.name, source="demo"
        )
        if not report.ok:  # the packaged file is checked by the tests; this guards against edits
            raise RuntimeError(f"demo prompts are invalid: {report.errors}")
        User = get_user_model()
        made: list[tuple[str, str, str]] = []
        kept: list[str] = []
        for username, password, role, is_staff in DEMO_USERS:
            # Create only: an existing account (perhaps a real one named "admin") keeps its password,
            # its flags and its memberships.
            if User.objects.filter(username=username).exists():
                kept.append(username)
                continue
            user = User(username=username, email=f"{username}@example.com")
            user.is_staff = is_staff
            user.is_superuser = is_staff
            user.set_password(password)
            user.save()
            Membership.objects.get_or_create(project=project, user=user, defaults={"role": role})
            made.append((username, password, role))
        verb = "created" if created else "updated"
        self.stdout.write(
            f"Demo project {verb}: {project.name!r} ({project.prompts.count()} prompts, {report.imported} new)"
        )
        if made:
            self.stdout.write(
                "Log in at http://127.0.0.1:8000/ with:\n"
                + "".join(f"  {role:<8} {username} / {password}\n" for username, password, role in made)
            )
        if kept:
            self.stdout.write(f"Existing users left unchanged: {', '.join(kept)}")
