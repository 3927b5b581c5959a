from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
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
    help = "Create the demo project with its prompts, an admin and two labelers (safe to run again)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        project, created = Project.objects.get_or_create(
            name=DEMO_PROJECT,
            defaults={
                "description": "Sixty everyday prompts to try the platform end to end.",
                "guidelines": DEMO_GUIDELINES,
                "k": 4,
                "rankings_per_prompt": 2,
                "demonstrations_per_prompt": 1,
                "max_tokens": 96,
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
        for username, password, role, is_staff in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com"}
            )
            user.is_staff = is_staff
            user.is_superuser = is_staff
            user.set_password(password)
            user.save()
            Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
        verb = "created" if created else "updated"
        self.stdout.write(
            f"Demo project {verb}: {project.name!r} ({project.prompts.count()} prompts, {report.imported} new)\n"
            "Log in at http://127.0.0.1:8000/ with:\n"
            + "".join(f"  {role:<8} {username} / {password}\n" for username, password, role, _ in DEMO_USERS)
        )
