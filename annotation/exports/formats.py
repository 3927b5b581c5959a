"""Export formats: how a source batch becomes records, and each format's Parquet schema.

Column names follow what TRL 1.x reads without reshaping:
- preference (RewardTrainer, DPOTrainer): `prompt`, `chosen`, `rejected`; plain text, or conversational
  where `prompt` is the list of {role, content} turns and `chosen`/`rejected` are one assistant turn;
- SFT (SFTTrainer): `prompt`/`completion` (plain or conversational) or `messages`.
- preference with an implicit prompt: `chosen`/`rejected` only, each holding the prompt too;
- KTO (KTOTrainer): `prompt`, `completion`, `label` (true: desirable), one answer per row;
- prompt-only (GRPOTrainer, RLOOTrainer): `prompt` alone.
Extra columns (ids, labeler, time) ride along; TRL drops unused columns by default.
A multi-turn prompt in a plain-text format is rendered as an HH-RLHF transcript ending "Assistant:".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from annotation.exports import conversations, derived, sources, trees
from annotation.exports.filters import ExportFilters
from annotation.exports.pairs_jsonl import (
    jsonl_hh_rlhf,
    jsonl_pairs,
    jsonl_pairs_conversational,
    jsonl_pairs_implicit,
    jsonl_pairs_implicit_conversational,
)
from annotation.exports.sources import SourceBatch
from annotation.exports.text import assistant_turn, hh_transcript, turns_as_text
from annotation.exports.unpaired import (
    pair_meta,
    render_kto,
    render_kto_conversational,
    render_pairs_implicit,
    render_pairs_implicit_conversational,
    render_prompt_only,
    render_prompt_only_conversational,
)


def _iso(moment) -> str:
    return moment.isoformat()


# --- Preference pairs ---------------------------------------------------------------------------


def render_pairs(batch: SourceBatch) -> list[dict[str, Any]]:
    prompt_text: dict[int, str] = {pid: turns_as_text(turns) for pid, turns in batch.prompts.items()}
    texts = batch.candidates
    return [
        {
            "prompt": prompt_text[row[0]],
            "chosen": texts[row[3]],
            "rejected": texts[row[4]],
            **pair_meta(row, batch),
        }
        for row in batch.rows
    ]


def render_pairs_conversational(batch: SourceBatch) -> list[dict[str, Any]]:
    texts = batch.candidates
    return [
        {
            "prompt": batch.prompts[row[0]],
            "chosen": assistant_turn(texts[row[3]]),
            "rejected": assistant_turn(texts[row[4]]),
            **pair_meta(row, batch),
        }
        for row in batch.rows
    ]


def render_hh_rlhf(batch: SourceBatch) -> list[dict[str, Any]]:
    texts = batch.candidates
    return [
        {
            "chosen": hh_transcript(batch.prompts[row[0]], answer=texts[row[3]]),
            "rejected": hh_transcript(batch.prompts[row[0]], answer=texts[row[4]]),
            **pair_meta(row, batch),
        }
        for row in batch.rows
    ]


# --- SFT ----------------------------------------------------------------------------------------


def _sft_meta(row, batch: SourceBatch) -> dict[str, Any]:
    demonstration_id, prompt_id, labeler_id, _text, seconds_spent, created_at = row
    return {
        "prompt_id": prompt_id,
        "demonstration_id": demonstration_id,
        "labeler": batch.names[labeler_id],
        "seconds_spent": seconds_spent,
        "created_at": _iso(created_at),
    }


def render_sft(batch: SourceBatch) -> list[dict[str, Any]]:
    return [
        {"prompt": turns_as_text(batch.prompts[row[1]]), "completion": row[3], **_sft_meta(row, batch)}
        for row in batch.rows
    ]


def render_sft_conversational(batch: SourceBatch) -> list[dict[str, Any]]:
    return [
        {"prompt": batch.prompts[row[1]], "completion": assistant_turn(row[3]), **_sft_meta(row, batch)}
        for row in batch.rows
    ]


def render_sft_messages(batch: SourceBatch) -> list[dict[str, Any]]:
    return [
        {"messages": batch.prompts[row[1]] + assistant_turn(row[3]), **_sft_meta(row, batch)}
        for row in batch.rows
    ]


# --- K-way rankings -----------------------------------------------------------------------------


def render_rankings(batch: SourceBatch) -> list[dict[str, Any]]:
    records = []
    for prompt in batch.rows:
        shown = sorted(
            {c for r in prompt.rankings for g in r["order"] for c in g}
            | {c for g in prompt.consensus_order for c in g}
        )
        candidates = []
        for cid in shown:
            c = batch.candidates[cid]
            candidates.append(
                {
                    "id": cid,
                    "text": c["text"],
                    "source": c["source"],
                    "backend": c["backend"],
                    "model_name": c["model_name"],
                    # Free-form JSON becomes a string so every row has the same columns.
                    "sampling_params": json.dumps(c["sampling_params"], sort_keys=True),
                    "seed": c["seed"],
                    "finish_reason": c["finish_reason"],
                    "demonstration_id": c["demonstration_id"],
                }
            )
        records.append(
            {
                "prompt_id": prompt.prompt_id,
                "prompt": batch.prompts[prompt.prompt_id],
                "candidates": candidates,
                "rankings": [
                    {
                        "ranking_id": r["id"],
                        "labeler": batch.names[r["labeler_id"]],
                        "source": r["source"],
                        "is_gold": r["is_gold"],
                        "none_acceptable": r["none_acceptable"],
                        "order": r["order"],
                        "items": r["items"],
                        "comment": r["comment"],
                        "seconds_spent": r["seconds_spent"],
                        "created_at": _iso(r["created_at"]),
                    }
                    for r in prompt.rankings
                ],
                "consensus_order": prompt.consensus_order,
                "agreement": prompt.agreement,
                "kendall_tau": prompt.kendall_tau,
            }
        )
    return records


# --- Registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFormat:
    name: str
    description: str
    # "pairs", "kto", "rankings", "demonstrations", "prompts", "conversation_pairs" or "trees":
    # which source feeds it
    kind: str
    render: Callable[[SourceBatch], list[dict[str, Any]]]
    # Optional fast path for JSONL: (text of the batch's lines, records in it). Same content as render.
    render_jsonl: Callable[[SourceBatch], tuple[str, int]] | None = None
    # The file formats it can be written as; None: every one (a tree nests deeper than Parquet can).
    file_formats: tuple[str, ...] | None = None
    # What the dataset card adds about the rows (Markdown), beyond the one-line description.
    details: str = ""

    @property
    def schema(self):
        """The Parquet schema; pyarrow is imported only when a Parquet file is written."""
        return self.schema_with(filters=None)

    def schema_with(self, *, filters: ExportFilters | None):
        """The Parquet schema with the columns `filters`' options add (margin, tie, split)."""
        from annotation.exports.schemas import schema_for

        return schema_for(self.name, optional_columns(kind=self.kind, filters=filters))


def optional_columns(*, kind: str, filters: ExportFilters | None) -> tuple[str, ...]:
    """The columns options add at the end of each row, in order."""
    if filters is None:
        return ()
    columns = []
    paired = kind in ("pairs", "conversation_pairs")
    if paired and filters.margin:
        columns.append("margin")
    if paired and filters.tie_policy == "keep":
        columns.append("tie")
    if filters.test_fraction and filters.split_output == "column":
        columns.append("split")
    return tuple(columns)


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in [
        ExportFormat(
            "pairs",
            "TRL preference pairs, plain text: prompt / chosen / rejected",
            "pairs",
            render_pairs,
            jsonl_pairs,
        ),
        ExportFormat(
            "pairs_conversational",
            "TRL preference pairs, conversational: lists of {role, content}",
            "pairs",
            render_pairs_conversational,
            jsonl_pairs_conversational,
        ),
        ExportFormat(
            "hh_rlhf",
            "Anthropic HH-RLHF transcripts: chosen / rejected",
            "pairs",
            render_hh_rlhf,
            jsonl_hh_rlhf,
        ),
        ExportFormat(
            "pairs_implicit",
            "TRL preference pairs, implicit prompt, plain text: chosen / rejected each hold the prompt",
            "pairs",
            render_pairs_implicit,
            jsonl_pairs_implicit,
        ),
        ExportFormat(
            "pairs_implicit_conversational",
            "TRL preference pairs, implicit prompt, conversational: prompt turns + the answer",
            "pairs",
            render_pairs_implicit_conversational,
            jsonl_pairs_implicit_conversational,
        ),
        ExportFormat(
            "kto",
            "TRL KTO unpaired rows, plain text: prompt / completion / label (from rankings or ratings)",
            "kto",
            render_kto,
        ),
        ExportFormat(
            "kto_conversational",
            "TRL KTO unpaired rows, conversational: prompt / completion / label",
            "kto",
            render_kto_conversational,
        ),
        ExportFormat(
            "prompt_only",
            "Prompts alone, plain text, for online training (GRPO, RLOO)",
            "prompts",
            render_prompt_only,
        ),
        ExportFormat(
            "prompt_only_conversational",
            "Prompts alone, conversational, for online training (GRPO, RLOO)",
            "prompts",
            render_prompt_only_conversational,
        ),
        ExportFormat(
            "sft",
            "SFT from demonstrations, plain text: prompt / completion",
            "demonstrations",
            render_sft,
        ),
        ExportFormat(
            "sft_conversational",
            "SFT from demonstrations, conversational prompt / completion",
            "demonstrations",
            render_sft_conversational,
        ),
        ExportFormat(
            "sft_messages",
            "SFT from demonstrations as one messages list",
            "demonstrations",
            render_sft_messages,
        ),
        ExportFormat(
            "rankings",
            "Full K-way rankings: candidates with provenance, every labeler's tie groups, ratings, flags, consensus",
            "rankings",
            render_rankings,
        ),
        ExportFormat(
            "conversation_pairs",
            "TRL conversational preference pairs per conversation turn, the whole history as the prompt, "
            "with each turn's place in its conversation and edits marked (edit_pairs option)",
            "conversation_pairs",
            conversations.render_conversation_pairs,
            details=conversations.CARD_DETAILS,
        ),
        ExportFormat(
            "oasst_trees",
            "Conversation trees as Open-Assistant's message-tree JSONL: one line per root prompt, "
            "replies nested with their consensus rank, provenance, edits, labels and rankings",
            "trees",
            trees.render_trees,
            file_formats=("jsonl", "jsonl.gz"),
            details=trees.CARD_DETAILS,
        ),
    ]
}


def format_batches(
    *, export_format: ExportFormat, project_id: int, filters: ExportFilters
) -> Iterator[SourceBatch]:
    kind = export_format.kind
    if kind == "conversation_pairs":
        return conversations.conversation_pair_batches(project_id=project_id, filters=filters)
    if kind == "trees":
        return trees.tree_batches(project_id=project_id, filters=filters)
    if kind == "kto" or (kind == "pairs" and filters.derives_pairs):
        return derived.derived_batches(project_id=project_id, filters=filters, kind=kind)
    if kind == "pairs":
        return sources.pair_batches(project_id=project_id, filters=filters)
    if kind == "prompts":
        return derived.prompt_batches(project_id=project_id, filters=filters)
    if kind == "rankings":
        return sources.ranking_batches(project_id=project_id, filters=filters)
    return sources.demonstration_batches(project_id=project_id, filters=filters)


def format_source_count(*, export_format: ExportFormat, project_id: int, filters: ExportFilters) -> int:
    """Rows the source will read: the denominator of an export's progress."""
    kind = export_format.kind
    if kind == "conversation_pairs":
        return conversations.conversation_pair_source_count(project_id=project_id, filters=filters)
    if kind == "trees":
        return trees.tree_row_count(project_id=project_id, filters=filters)
    if kind == "kto" or (kind == "pairs" and filters.derives_pairs):
        return derived.derived_source_count(project_id=project_id, filters=filters)
    if kind == "pairs":
        return sources.comparison_source_count(project_id=project_id, filters=filters)
    if kind == "prompts":
        return derived.prompt_row_count(project_id=project_id, filters=filters)
    if kind == "rankings":
        return sources.ranking_source_count(project_id=project_id, filters=filters)
    return sources.demonstration_source_count(project_id=project_id, filters=filters)


def format_row_count(*, export_format: ExportFormat, project_id: int, filters: ExportFilters) -> int:
    """Rows (records) the export will hold, counted by the database instead of written (derived
    rows are counted by the generator that writes them, without reading a text)."""
    kind = export_format.kind
    if kind == "conversation_pairs":
        return conversations.conversation_pair_row_count(project_id=project_id, filters=filters)
    if kind == "trees":
        return trees.tree_row_count(project_id=project_id, filters=filters)
    if kind == "kto" or (kind == "pairs" and filters.derives_pairs):
        return derived.derived_row_count(project_id=project_id, filters=filters, kind=kind)
    if kind == "pairs":
        return sources.pair_row_count(project_id=project_id, filters=filters)
    if kind == "prompts":
        return derived.prompt_row_count(project_id=project_id, filters=filters)
    if kind == "rankings":
        return sources.ranking_row_count(project_id=project_id, filters=filters)
    return sources.demonstration_row_count(project_id=project_id, filters=filters)
