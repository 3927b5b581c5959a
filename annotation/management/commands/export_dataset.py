"""Export a project's data to a file or stdout, streaming with constant memory.

    manage.py export_dataset --project 1 --format pairs --output pairs.jsonl.gz
    manage.py export_dataset --project "My project" --format rankings --file-format parquet -o r.parquet \
        --date-from 2024-05-01 --labeler alice --min-agreement 0.6 --exclude-flagged --anonymise
    manage.py export_dataset --project 1 --format kto --kto-from ratings --desirable-rating 6 \
        --test-fraction 0.1 --split-output files -o kto.zip        # train, test and README.md
    manage.py export_dataset --project 1 --format pairs --margin --file-format hf_dataset -o pairs.hf_dataset.tar

Split files and hf_dataset are written as a background job writes them, with the dataset card.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.exports.formats import FORMATS
from annotation.exports.options import EDIT_PAIRS, KTO_SOURCES, PAIR_POLICIES, SPLIT_OUTPUTS, TIE_POLICIES
from annotation.exports.writers import FILE_FORMATS
from annotation.models import Project
from annotation.selectors.projects import project_by_reference
from annotation.services.export_files import export_files_write
from annotation.services.exports import export_request_validate, export_stream
from config.errors import DomainError


class Command(BaseCommand):
    help = "Export preference pairs, SFT data, K-way rankings or HH-RLHF transcripts of one project."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or exact name.")
        parser.add_argument("--format", dest="export_format", required=True, choices=sorted(FORMATS))
        parser.add_argument(
            "--file-format",
            choices=sorted(FILE_FORMATS),
            help="Default: from the output's extension (.jsonl, .jsonl.gz, .parquet), else jsonl.",
        )
        parser.add_argument("-o", "--output", help="File to write ('-' or nothing: stdout).")
        parser.add_argument("--date-from")
        parser.add_argument("--date-to")
        parser.add_argument("--labeler", action="append", default=[], help="Username or id; repeatable.")
        parser.add_argument("--min-agreement", type=float)
        parser.add_argument("--consensus-only", action="store_true")
        parser.add_argument("--exclude-flagged", action="store_true")
        parser.add_argument(
            "--anonymise",
            action="store_true",
            help="Labelers as pseudonyms, keyed by the server's secret and the project (no seed to give).",
        )
        options = parser.add_argument_group("options (README: the export table)")
        options.add_argument("--pair-policy", choices=PAIR_POLICIES)
        options.add_argument("--tie-policy", choices=TIE_POLICIES)
        options.add_argument("--margin", action="store_true", help="Pair formats: a margin column.")
        options.add_argument("--kto-from", choices=KTO_SOURCES)
        options.add_argument("--desirable-rating", type=int, help="kto_from=ratings: rating >= this.")
        options.add_argument("--undesirable-rating", type=int, help="kto_from=ratings: rating <= this.")
        options.add_argument("--test-fraction", type=float, help="Share of prompts held out as test.")
        options.add_argument("--split-output", choices=SPLIT_OUTPUTS, help="files: a zip of train and test.")
        options.add_argument(
            "--edit-pairs", choices=EDIT_PAIRS, help="conversation_pairs: which pairs of edits."
        )

    def handle(self, *args, **options) -> None:
        project = self._project(options["project"])
        output = options["output"]
        file_format = options["file_format"] or self._file_format_from(output)
        filters = {
            "date_from": options["date_from"],
            "date_to": options["date_to"],
            "labelers": self._labeler_ids(options["labeler"]),
            "min_agreement": options["min_agreement"],
            "consensus_only": options["consensus_only"],
            "exclude_flagged": options["exclude_flagged"],
            "anonymise": options["anonymise"],
            **{
                name: options[name]
                for name in (
                    "pair_policy",
                    "tie_policy",
                    "margin",
                    "kto_from",
                    "desirable_rating",
                    "undesirable_rating",
                    "test_fraction",
                    "split_output",
                    "edit_pairs",
                )
            },
        }
        several_files = file_format == "hf_dataset" or options["split_output"] == "files"
        try:
            request = export_request_validate(
                project=project,
                export_format=options["export_format"],
                file_format=file_format,
                filters=filters,
                streamed=not several_files,
            )
        except DomainError as error:
            raise CommandError(error.message) from None
        written = [0]

        def progress(records: int, _read: int) -> None:
            written[0] = records

        if several_files:
            if not output or output == "-":
                raise CommandError("split files and hf_dataset need -o (an archive: .zip or .hf_dataset.tar)")
            path = Path(output)
            if not path.parent.is_dir():
                raise CommandError(f"cannot write {path}: folder {path.parent} does not exist")
            stem = path.with_name(path.name.removesuffix(".zip").removesuffix(".hf_dataset.tar"))
            path = export_files_write(request=request, stem=stem, on_progress=progress)
            self.stderr.write(f"wrote {path} with its dataset card")
        elif not output or output == "-":
            sink = sys.stdout.buffer
            for chunk in export_stream(request=request, on_progress=progress):
                sink.write(chunk)
            sink.flush()
        else:
            # Write beside the target and rename, so an interrupted export leaves no half file.
            path = Path(output)
            if not path.parent.is_dir():
                raise CommandError(f"cannot write {path}: folder {path.parent} does not exist")
            partial = path.with_name(path.name + ".part")
            try:
                with open(partial, "wb") as handle:
                    for chunk in export_stream(request=request, on_progress=progress):
                        handle.write(chunk)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
        self.stderr.write(f"exported {written[0]} row(s) as {request.export_format.name} ({file_format})")

    def _project(self, value: str) -> Project:
        project = project_by_reference(reference=value)
        if project is None:
            raise CommandError(f"no project with id or name {value!r}")
        return project

    def _file_format_from(self, output: str | None) -> str:
        name = (output or "").lower()
        if name.endswith(".jsonl.gz"):
            return "jsonl.gz"
        if name.endswith(".parquet"):
            return "parquet"
        if name.endswith(".hf_dataset.tar"):
            return "hf_dataset"
        return "jsonl"

    def _labeler_ids(self, values: list[str]) -> list[int] | None:
        if not values:
            return None
        users = get_user_model().objects
        ids = []
        for value in values:
            user = users.filter(username=value).first() or (
                users.filter(pk=int(value)).first() if value.isdigit() else None
            )
            if user is None:
                raise CommandError(f"no user {value!r}")
            ids.append(user.pk)
        return ids
