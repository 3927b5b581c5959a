"""Writes for prompts: normalising turns, hashing them, and importing files all-or-nothing."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.db import transaction

from annotation.models import Project, Prompt
from config.errors import ValidationFailed
from config.text import value_text_problem

ROLES = ("system", "user", "assistant")
MAX_TURN_CHARS = 100_000
MAX_IMPORT_ERRORS_REPORTED = 200


def turns_normalise(*, turns: Any) -> list[dict[str, str]]:
    """Check a list of {role, content} turns and return it with content stripped.

    The conversation must end on a user turn: that is what the candidates answer.
    Raises ValidationFailed with a reason a person can act on.
    """
    if not isinstance(turns, list) or not turns:
        raise ValidationFailed("messages must be a non-empty list of {role, content} objects")
    normalised: list[dict[str, str]] = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise ValidationFailed(f"message {index} is not an object")
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise ValidationFailed(f"message {index} has role {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise ValidationFailed(f"message {index} has empty or non-text content")
        if len(content) > MAX_TURN_CHARS:
            raise ValidationFailed(f"message {index} is longer than {MAX_TURN_CHARS} characters")
        normalised.append({"role": role, "content": content.strip()})
    if normalised[-1]["role"] != "user":
        raise ValidationFailed("the last message must be from the user")
    if any(turn["role"] == "system" for turn in normalised[1:]):
        raise ValidationFailed("a system message may only come first")
    return normalised


def turns_hash(*, turns: list[dict[str, str]]) -> str:
    """SHA-256 of the normalised turns; equal conversations hash equal whatever their JSON spacing."""
    canonical = json.dumps(turns, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class PromptRow:
    line: int
    turns: list[dict[str, str]]
    tags: list[str]
    priority: int
    source: str


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "duplicates": self.duplicates, "errors": self.errors}


def _parse_tags(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            value = json.loads(stripped)
        else:
            return [tag.strip() for tag in stripped.replace(";", ",").split(",") if tag.strip()]
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ValidationFailed("tags must be a list of strings or a comma-separated string")
    return [tag.strip() for tag in value if tag.strip()]


def _parse_priority(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValidationFailed("priority must be an integer")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        raise ValidationFailed(f"priority must be an integer, not {value!r}") from None
    if isinstance(value, float) and number != value:
        raise ValidationFailed(f"priority must be an integer, not {value!r}")
    if not -1_000_000 <= number <= 1_000_000:
        raise ValidationFailed("priority must be between -1000000 and 1000000")
    return number


def prompt_row_parse(*, record: Any, line: int, default_source: str) -> PromptRow:
    """Turn one decoded JSONL object or CSV row into a PromptRow, or raise ValidationFailed."""
    if not isinstance(record, dict):
        raise ValidationFailed("each line must be a JSON object")
    unstorable = value_text_problem(record)
    if unstorable:
        where, problem = unstorable
        raise ValidationFailed(f"text that cannot be stored: {problem} in {where}")
    prompt, messages = record.get("prompt"), record.get("messages")
    if messages not in (None, "") and prompt not in (None, ""):
        raise ValidationFailed("give either 'prompt' or 'messages', not both")
    if messages not in (None, ""):
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except json.JSONDecodeError as error:
                raise ValidationFailed(f"'messages' is not valid JSON: {error.msg}") from None
        turns = turns_normalise(turns=messages)
    elif isinstance(prompt, str) and prompt.strip():
        turns = turns_normalise(turns=[{"role": "user", "content": prompt}])
    else:
        raise ValidationFailed("missing 'prompt' text or 'messages' list")
    try:
        tags = _parse_tags(record.get("tags"))
    except json.JSONDecodeError:
        raise ValidationFailed("tags is not valid JSON") from None
    source = record.get("source") or default_source
    if not isinstance(source, str) or len(source) > 200:
        raise ValidationFailed("source must be text of at most 200 characters")
    return PromptRow(
        line=line, turns=turns, tags=tags, priority=_parse_priority(record.get("priority")), source=source
    )


# Rows per batch of the duplicate check and of the inserts: one `IN` list of this many hashes stays
# far below PostgreSQL's 65,535 bind parameters (a single list of every hash failed past that) and
# SQLite's 32,766, and the rows waiting to be written never exceed it, whatever the file's size.
CHUNK_ROWS = 5_000
IMPORT_EXTENSIONS = (".jsonl", ".json", ".ndjson", ".csv")


@dataclass
class LineError:
    line: int | None
    reason: str


ProgressCallback = Callable[[int, int, int], None]  # (rows read, bad lines, bytes read)


def _text_lines(stream: IO[bytes]) -> Iterator[tuple[int, str]]:
    """The file's lines as text, numbered from 1, read one at a time (bounded memory).

    Bytes that are not UTF-8 are kept as lone surrogates (`surrogateescape`), so that the check of
    each row (config.text) names the line they are on, instead of refusing the whole file.
    """
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        yield number, raw.decode("utf-8", errors="surrogateescape")


def _records_jsonl(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, Any, str | None]]:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            yield number, json.loads(text), None
        except json.JSONDecodeError as error:
            yield number, None, f"invalid JSON: {error.msg} at column {error.colno}"


def _records_csv(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, Any, str | None]]:
    reader = csv.DictReader(text for _number, text in lines)
    try:
        fields = set(reader.fieldnames or [])
    except csv.Error as error:
        yield 1, None, f"the header is not valid CSV: {error}"
        return
    if not fields & {"prompt", "messages"}:
        yield 1, None, "the header must have a 'prompt' or a 'messages' column"
        return
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # e.g. a field past csv's size limit; the reader goes on after it
            yield reader.line_num, None, f"not valid CSV: {error}"
            continue
        # Line numbers count the header as line 1, as a spreadsheet shows them.
        if None in row:
            yield reader.line_num, None, "the row has more fields than the header"
            continue
        yield reader.line_num, row, None


def prompt_file_rows(
    *, stream: IO[bytes], filename: str, default_source: str = ""
) -> Iterator[PromptRow | LineError]:
    """Each row of a JSONL or CSV file (by extension) as a PromptRow, or a LineError naming the line.

    Reads the stream line by line: memory does not grow with the file.
    """
    lowered = filename.lower()
    lines = _text_lines(stream)
    if lowered.endswith((".jsonl", ".json", ".ndjson")):
        records = _records_jsonl(lines)
    elif lowered.endswith(".csv"):
        records = _records_csv(lines)
    else:
        raise ValidationFailed("the file must end in .jsonl or .csv")
    empty = True
    for line, record, problem in records:
        empty = False
        if problem is None:
            try:
                yield prompt_row_parse(record=record, line=line, default_source=default_source)
                continue
            except ValidationFailed as error:
                problem = error.message
        yield LineError(line=line, reason=problem)
    if empty:
        yield LineError(line=0, reason="the file holds no prompts")


def _errors_reported(errors: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    if total > len(errors):
        return [*errors, {"line": None, "reason": f"... and {total - len(errors)} more"}]
    return errors


def _rows_store(*, project: Project, rows: list[PromptRow], seen: set[str] | None, dry_run: bool) -> int:
    """Write one batch of rows, skipping prompts the project has; returns how many were new.

    Earlier batches of the same import are already in the table (same transaction), so the check
    against it also finds a file's repeats across batches; `seen` is only needed when nothing is
    written (a dry run).
    """
    hashed: dict[str, PromptRow] = {}
    for row in rows:
        content_hash = turns_hash(turns=row.turns)
        if content_hash not in hashed and (seen is None or content_hash not in seen):
            hashed[content_hash] = row
    existing = set(
        Prompt.objects.filter(project=project, content_hash__in=list(hashed)).values_list(
            "content_hash", flat=True
        )
    )
    new = [(content_hash, row) for content_hash, row in hashed.items() if content_hash not in existing]
    if seen is not None:
        seen.update(content_hash for content_hash, _row in new)
    if not dry_run:
        Prompt.objects.bulk_create(
            [
                Prompt(
                    project=project,
                    turns=row.turns,
                    content_hash=content_hash,
                    tags=row.tags,
                    priority=row.priority,
                    source=row.source,
                )
                for content_hash, row in new
            ],
            batch_size=1000,
        )
    return len(new)


def prompts_check(
    *, stream: IO[bytes], filename: str, on_progress: ProgressCallback | None = None
) -> ImportReport:
    """Read a whole file for bad lines, writing nothing (a background import's first pass, whose
    progress others can read because no transaction hides it). `imported` counts the good rows."""
    report = ImportReport()
    total_errors = rows_read = 0
    for item in prompt_file_rows(stream=stream, filename=filename):
        rows_read += 1
        if isinstance(item, LineError):
            total_errors += 1
            if len(report.errors) < MAX_IMPORT_ERRORS_REPORTED:
                report.errors.append({"line": item.line, "reason": item.reason})
        else:
            report.imported += 1
        if on_progress and rows_read % CHUNK_ROWS == 0:
            on_progress(rows_read, total_errors, stream.tell())
    if on_progress:
        on_progress(rows_read, total_errors, stream.tell())
    report.errors = _errors_reported(report.errors, total_errors)
    return report


@transaction.atomic
def prompts_import(
    *,
    project: Project,
    content: bytes | IO[bytes],
    filename: str,
    source: str = "",
    dry_run: bool = False,
) -> ImportReport:
    """Import prompts from a JSONL or CSV file (bytes, or a binary file read line by line) into a
    project, all or nothing, in batches of CHUNK_ROWS: any size, in bounded memory.

    A file with any bad line imports nothing (the batches already written are rolled back); the
    report lists every bad line (up to a limit). Prompts already in the project, or repeated in the
    file, are skipped and counted as duplicates.
    """
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    report = ImportReport()
    total_errors = rows_good = 0
    seen: set[str] | None = set() if dry_run else None
    batch: list[PromptRow] = []
    for item in prompt_file_rows(stream=stream, filename=filename, default_source=source or filename):
        if isinstance(item, LineError):
            total_errors += 1
            if len(report.errors) < MAX_IMPORT_ERRORS_REPORTED:
                report.errors.append({"line": item.line, "reason": item.reason})
            batch = []  # nothing more is written; the file is read on to name every bad line
            continue
        rows_good += 1
        if total_errors:
            continue
        batch.append(item)
        if len(batch) >= CHUNK_ROWS:
            report.imported += _rows_store(project=project, rows=batch, seen=seen, dry_run=dry_run)
            batch = []
    if total_errors:
        transaction.set_rollback(True)
        return ImportReport(errors=_errors_reported(report.errors, total_errors))
    report.imported += _rows_store(project=project, rows=batch, seen=seen, dry_run=dry_run)
    report.duplicates = rows_good - report.imported
    return report


@transaction.atomic
def prompt_create(
    *, project: Project, turns: Any, tags: list[str] | None = None, priority: int = 0, source: str = ""
) -> Prompt:
    """Create one prompt; raises ValidationFailed if the turns are invalid or the project has it already."""
    normalised = turns_normalise(turns=turns)
    content_hash = turns_hash(turns=normalised)
    if Prompt.objects.filter(project=project, content_hash=content_hash).exists():
        raise ValidationFailed("this project already has that prompt", code="duplicate")
    return Prompt.objects.create(
        project=project,
        turns=normalised,
        content_hash=content_hash,
        tags=tags or [],
        priority=priority,
        source=source,
    )
