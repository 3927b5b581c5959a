from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.selectors.projects import project_by_reference
from annotation.services.prompts import prompts_import
from config.errors import ValidationFailed


class Command(BaseCommand):
    help = "Import prompts from a JSONL or CSV file into a project; a file with any bad line imports nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="Project name or id")
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--source", default="", help="Source recorded on each prompt (default: file name)"
        )
        parser.add_argument("--dry-run", action="store_true", help="Check the file and count, store nothing")

    def handle(self, *args, project: str, path: Path, source: str, dry_run: bool, **options) -> None:
        found = project_by_reference(reference=project)
        if found is None:
            raise CommandError(f"no project with id or name {project!r}")
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        try:
            report = prompts_import(
                project=found, content=path.read_bytes(), filename=path.name, source=source, dry_run=dry_run
            )
        except ValidationFailed as error:
            raise CommandError(error.message) from None
        if not report.ok:
            for problem in report.errors:
                self.stderr.write(f"line {problem['line']}: {problem['reason']}")
            raise CommandError(f"{len(report.errors)} bad line(s); nothing was imported")
        verb = "would import" if dry_run else "imported"
        self.stdout.write(f"{verb} {report.imported}, skipped {report.duplicates} duplicate(s)")
