"""Importing external preference data (TRL JSONL, HH-RLHF transcripts) as rankings.

Each pair becomes a prompt (reused when the project already has the same conversation), two
imported candidates, and one imported ranking [[chosen], [rejected]] stored through
`ranking_record`, so its comparison rows are the same as a labeler's. All or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from annotation.models import Candidate, Comparison, Project, Prompt
from annotation.models.prompts import CandidateSource
from annotation.models.rankings import RankingSource
from annotation.services.prompts import turns_hash, turns_normalise
from annotation.services.rankings import ranking_record
from config.errors import ValidationFailed
from rewards.ml.preference_formats import PreferencePair, jsonl_records

MAX_ERRORS_REPORTED = 200
MAX_ANSWER_CHARS = 100_000


@dataclass
class PreferenceImportReport:
    rankings: int = 0
    prompts_created: int = 0
    candidates_created: int = 0
    duplicates: int = 0  # pairs already imported into this project
    identical: int = 0  # chosen == rejected: no preference to learn
    skipped_lines: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: int = 0  # all of them; `errors` lists at most MAX_ERRORS_REPORTED

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "rankings": self.rankings,
            "prompts_created": self.prompts_created,
            "candidates_created": self.candidates_created,
            "duplicates": self.duplicates,
            "identical": self.identical,
            "skipped_lines": self.skipped_lines,
            "errors": self.errors,
        }


def _text_hash(text: str) -> str:
    # One definition of "the same answer" across the platform (whitespace-insensitive).
    from annotation.services.candidates import candidate_text_hash

    return candidate_text_hash(text=text)


def _pairs_parse(content: bytes) -> tuple[list[tuple[PreferencePair, list[dict[str, str]]]], list[dict]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValidationFailed(f"the file is not UTF-8 text (byte {error.start})") from None
    parsed: list[tuple[PreferencePair, list[dict[str, str]]]] = []
    errors: list[dict[str, Any]] = []
    for line, pair, problem in jsonl_records(text):
        if pair is not None:
            try:
                turns = turns_normalise(turns=pair.turns)
                if max(len(pair.chosen), len(pair.rejected)) > MAX_ANSWER_CHARS:
                    raise ValidationFailed(f"an answer is longer than {MAX_ANSWER_CHARS} characters")
                parsed.append((pair, turns))
                continue
            except ValidationFailed as error:
                problem = error.message
        errors.append({"line": line, "reason": problem})
    if not parsed and not errors:
        errors.append({"line": 0, "reason": "the file holds no preference pairs"})
    return parsed, errors


def _candidate_get_or_create(*, prompt: Prompt, text: str, source_name: str, report) -> Candidate:
    content_hash = _text_hash(text)
    candidate = Candidate.objects.filter(prompt=prompt, content_hash=content_hash).first()
    if candidate is None:
        candidate = Candidate.objects.create(
            prompt=prompt,
            text=text,
            content_hash=content_hash,
            source=CandidateSource.IMPORT,
            model_name=source_name[:500],
        )
        report.candidates_created += 1
    return candidate


@transaction.atomic
def preferences_import(
    *, project: Project, content: bytes, source: str = "import", skip_invalid: bool = False
) -> PreferenceImportReport:
    """Import a preference JSONL file into `project` as rankings.

    All or nothing: with any bad line nothing is written and `errors` lists every bad line by
    number (up to a limit). With `skip_invalid` the good lines are imported and the bad ones are
    listed in `skipped_lines`. Importing the same file twice adds nothing the second time.
    """
    parsed, errors = _pairs_parse(content)
    report = PreferenceImportReport()
    if errors and (not skip_invalid or not parsed):
        report.errors = errors[:MAX_ERRORS_REPORTED]
        report.bad_lines = len(errors)
        if len(errors) > MAX_ERRORS_REPORTED:
            report.errors.append(
                {"line": None, "reason": f"... and {len(errors) - MAX_ERRORS_REPORTED} more"}
            )
        return report
    report.skipped_lines = errors[:MAX_ERRORS_REPORTED]
    prompts: dict[str, Prompt] = {}
    source = (source or "import")[:200]
    for pair, turns in parsed:
        if _text_hash(pair.chosen) == _text_hash(pair.rejected):
            report.identical += 1  # nothing to learn; and no prompt is made for it
            continue
        content_hash = turns_hash(turns=turns)
        prompt = prompts.get(content_hash)
        if prompt is None:
            prompt, created = Prompt.objects.get_or_create(
                project=project,
                content_hash=content_hash,
                defaults={"turns": turns, "source": source},
            )
            report.prompts_created += int(created)
            prompts[content_hash] = prompt
        chosen = _candidate_get_or_create(prompt=prompt, text=pair.chosen, source_name=source, report=report)
        rejected = _candidate_get_or_create(
            prompt=prompt, text=pair.rejected, source_name=source, report=report
        )
        if Comparison.objects.filter(
            prompt=prompt, better=chosen, worse=rejected, ranking__source=RankingSource.IMPORT
        ).exists():
            report.duplicates += 1
            continue
        ranking_record(
            prompt=prompt,
            candidate_ids=[chosen.pk, rejected.pk],
            order=[[chosen.pk], [rejected.pk]],
            labeler=None,
            source=RankingSource.IMPORT,
            comment=f"imported from {source}, line {pair.line}",
        )
        report.rankings += 1
    return report
