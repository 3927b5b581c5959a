"""manage.py import_preferences PROJECT FILE: TRL preference JSONL or HH-RLHF transcripts as rankings."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.selectors.projects import project_by_reference
from config.errors import DomainError
from rewards.services.imports import preferences_import


class Command(BaseCommand):
    help = (
        "Import preference pairs (TRL prompt/chosen/rejected JSONL, or HH-RLHF chosen/rejected "
        "transcripts) into a project as imported rankings. All or nothing unless --skip-invalid."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="project id or exact name")
        parser.add_argument("file", type=Path, help="a .jsonl file")
        parser.add_argument(
            "--source", default="", help="provenance recorded on prompts (default: file name)"
        )
        parser.add_argument(
            "--skip-invalid", action="store_true", help="import the good lines and list the bad ones"
        )

    def handle(self, *args, **options) -> None:
        reference = options["project"]
        project = project_by_reference(reference=reference)
        if project is None:
            raise CommandError(f"no project with id or name {reference!r}")
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        try:
            report = preferences_import(
                project=project,
                content=path.read_bytes(),
                source=options["source"] or path.name,
                skip_invalid=options["skip_invalid"],
            )
        except DomainError as error:
            raise CommandError(error.message) from None
        if not report.ok:
            for problem in report.errors:
                self.stderr.write(f"line {problem['line']}: {problem['reason']}")
            raise CommandError(f"nothing imported: {report.bad_lines} bad line(s)")
        for skipped in report.skipped_lines:
            self.stderr.write(f"skipped line {skipped['line']}: {skipped['reason']}")
        self.stdout.write(json.dumps({k: v for k, v in report.as_dict().items() if k != "skipped_lines"}))
