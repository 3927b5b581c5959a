"""One export request, checked, as records or a byte stream: what every path (download, API, job,
command) runs. Kept apart from the services that store jobs, so the file writer can build on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from annotation.exports.card import ExportTally
from annotation.exports.filters import ExportFilters, export_filters_parse
from annotation.exports.formats import FORMATS, ExportFormat, format_batches, format_source_count
from annotation.exports.options import options_check_format
from annotation.exports.split import with_split
from annotation.exports.writers import FILE_FORMATS, FOLDER_FORMATS, encode, gzip_chunks
from annotation.models import Project
from config.errors import ValidationFailed

ProgressCallback = Callable[[int, int], None]  # (records written, source rows read)


@dataclass(frozen=True)
class ExportRequest:
    project: Project
    export_format: ExportFormat
    file_format: str
    filters: ExportFilters

    @property
    def filename(self) -> str:
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        return (
            f"project-{self.project.pk}-{self.export_format.name}-{stamp}.{FILE_FORMATS[self.file_format][1]}"
        )

    @property
    def content_type(self) -> str:
        return FILE_FORMATS[self.file_format][0]


def export_request_validate(
    *,
    project: Project,
    export_format: str,
    file_format: str,
    filters: dict[str, Any] | ExportFilters | None,
    streamed: bool = True,
) -> ExportRequest:
    """Check the format names, filters and options; raise ValidationFailed naming what is wrong.

    `streamed`: the export goes out as one byte stream (a download, stdout), which cannot hold
    separate split files or a `save_to_disk` folder; background jobs and the command's files can.
    """
    if export_format not in FORMATS:
        raise ValidationFailed(
            f"unknown export format {export_format!r}; choose one of {', '.join(FORMATS)}",
            code="invalid_export_format",
            details={"choices": list(FORMATS)},
        )
    if file_format not in FILE_FORMATS:
        raise ValidationFailed(
            f"unknown file format {file_format!r}; choose one of {', '.join(FILE_FORMATS)}",
            code="invalid_file_format",
            details={"choices": list(FILE_FORMATS)},
        )
    parsed = filters if isinstance(filters, ExportFilters) else export_filters_parse(raw=filters)
    chosen = FORMATS[export_format]
    if chosen.file_formats is not None and file_format not in chosen.file_formats:
        raise ValidationFailed(
            f"{export_format} is written as {' or '.join(chosen.file_formats)} only, not {file_format}",
            code="invalid_file_format",
            details={"choices": list(chosen.file_formats)},
        )
    if chosen.kind == "demonstrations" and parsed.needs_prompt_groups:
        raise ValidationFailed(
            "min_agreement and consensus_only apply to rankings, not to demonstration (SFT) exports",
            code="invalid_filter",
        )
    options_check_format(filters=parsed, kind=chosen.kind, format_name=chosen.name)
    if streamed and (file_format in FOLDER_FORMATS or parsed.split_output == "files"):
        what = "split_output=files" if parsed.split_output == "files" else f"file_format={file_format}"
        raise ValidationFailed(
            f"{what} writes several files: run the export as a background job (or export_dataset -o)",
            code="invalid_option",
            details={"option": "split_output" if parsed.split_output == "files" else "file_format"},
        )
    return ExportRequest(project=project, export_format=chosen, file_format=file_format, filters=parsed)


def export_records(
    *, request: ExportRequest, on_progress: ProgressCallback | None = None, tally: ExportTally | None = None
) -> Iterator[list[dict]]:
    """Batches of records (dicts), lazily; `on_progress` hears after every batch, `tally` counts
    them for the dataset card. With a `test_fraction` each record carries its prompt's `split`
    (see annotation/exports/split.py)."""
    records_iter = _records(request=request, on_progress=on_progress)
    if request.filters.test_fraction:
        records_iter = with_split(records_iter, test_fraction=request.filters.test_fraction)
    if tally is not None:
        records_iter = _tallied(records_iter, tally)
    return records_iter


def _tallied(batches: Iterator[list[dict]], tally: ExportTally) -> Iterator[list[dict]]:
    for records in batches:
        tally.add_records(records)
        yield records


def _records(*, request: ExportRequest, on_progress: ProgressCallback | None) -> Iterator[list[dict]]:
    written = read = 0
    for batch in format_batches(
        export_format=request.export_format, project_id=request.project.pk, filters=request.filters
    ):
        records = request.export_format.render(batch)
        written += len(records)
        read += batch.source_rows
        yield records
        if on_progress is not None:
            on_progress(written, read)


def _jsonl_fast(
    *, request: ExportRequest, on_progress: ProgressCallback | None, tally: ExportTally | None
) -> Iterator[bytes]:
    written = read = 0
    render = request.export_format.render_jsonl
    assert render is not None
    for batch in format_batches(
        export_format=request.export_format, project_id=request.project.pk, filters=request.filters
    ):
        text, count = render(batch)
        if tally is not None:  # pair rows: (prompt_id, ..., created_at text at 5)
            for row in batch.rows:
                tally.add(prompt_id=row[0], split="train", created_at=row[5])
        written += count
        read += batch.source_rows
        if text:
            yield text.encode("utf-8")
        if on_progress is not None:
            on_progress(written, read)


def export_stream(
    *, request: ExportRequest, on_progress: ProgressCallback | None = None, tally: ExportTally | None = None
) -> Iterator[bytes]:
    """The export as a byte stream in the requested file format (`tally`: see export_records)."""
    if (
        request.file_format in ("jsonl", "jsonl.gz")
        and request.export_format.render_jsonl is not None
        and not request.filters.derives_pairs
        and not request.filters.test_fraction
    ):
        lines = _jsonl_fast(request=request, on_progress=on_progress, tally=tally)
        return lines if request.file_format == "jsonl" else gzip_chunks(lines)
    return encode(
        export_records(request=request, on_progress=on_progress, tally=tally),
        file_format=request.file_format,
        schema_factory=lambda: request.export_format.schema_with(filters=request.filters),
    )


def export_source_count(*, request: ExportRequest) -> int:
    return format_source_count(
        export_format=request.export_format, project_id=request.project.pk, filters=request.filters
    )
