"""Writes for prompts: normalising turns, hashing them, and importing files all-or-nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from annotation.models import Project, Prompt
from config.errors import ValidationFailed

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


def _records_jsonl(text: str) -> Iterator[tuple[int, Any, str | None]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw), None
        except json.JSONDecodeError as error:
            yield number, None, f"invalid JSON: {error.msg} at column {error.colno}"


def _records_csv(text: str) -> Iterator[tuple[int, Any, str | None]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or [])
    if not fields & {"prompt", "messages"}:
        yield 1, None, "the header must have a 'prompt' or a 'messages' column"
        return
    for row in reader:
        # Line numbers count the header as line 1, as a spreadsheet shows them.
        if None in row:
            yield reader.line_num, None, "the row has more fields than the header"
            continue
        yield reader.line_num, row, None


def prompt_file_parse(
    *, content: bytes, filename: str, default_source: str = ""
) -> tuple[list[PromptRow], list]:
    """Parse a JSONL or CSV file (by extension) into rows, collecting every bad line with its reason."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValidationFailed(f"the file is not UTF-8 text (byte {error.start})") from None
    lowered = filename.lower()
    if lowered.endswith((".jsonl", ".json", ".ndjson")):
        records: Iterable[tuple[int, Any, str | None]] = _records_jsonl(text)
    elif lowered.endswith(".csv"):
        records = _records_csv(text)
    else:
        raise ValidationFailed("the file must end in .jsonl or .csv")
    rows: list[PromptRow] = []
    errors: list[dict[str, Any]] = []
    for line, record, problem in records:
        if problem is None:
            try:
                rows.append(prompt_row_parse(record=record, line=line, default_source=default_source))
                continue
            except ValidationFailed as error:
                problem = error.message
        errors.append({"line": line, "reason": problem})
    if not rows and not errors:
        errors.append({"line": 0, "reason": "the file holds no prompts"})
    return rows, errors


@transaction.atomic
def prompts_import(
    *, project: Project, content: bytes, filename: str, source: str = "", dry_run: bool = False
) -> ImportReport:
    """Import prompts from a JSONL or CSV file into a project, all or nothing.

    A file with any bad line imports nothing; the report lists every bad line (up to a limit).
    Prompts already in the project, or repeated in the file, are skipped and counted as duplicates.
    """
    rows, errors = prompt_file_parse(content=content, filename=filename, default_source=source or filename)
    report = ImportReport()
    if errors:
        report.errors = errors[:MAX_IMPORT_ERRORS_REPORTED]
        if len(errors) > MAX_IMPORT_ERRORS_REPORTED:
            report.errors.append(
                {"line": None, "reason": f"... and {len(errors) - MAX_IMPORT_ERRORS_REPORTED} more"}
            )
        return report
    hashed = [(turns_hash(turns=row.turns), row) for row in rows]
    existing = set(
        Prompt.objects.filter(project=project, content_hash__in=[h for h, _ in hashed]).values_list(
            "content_hash", flat=True
        )
    )
    to_create: list[Prompt] = []
    for content_hash, row in hashed:
        if content_hash in existing:
            report.duplicates += 1
            continue
        existing.add(content_hash)
        to_create.append(
            Prompt(
                project=project,
                turns=row.turns,
                content_hash=content_hash,
                tags=row.tags,
                priority=row.priority,
                source=row.source,
            )
        )
    if not dry_run:
        Prompt.objects.bulk_create(to_create, batch_size=1000)
    report.imported = len(to_create)
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
