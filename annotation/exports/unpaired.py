"""Renderers of the formats added for TRL's newer trainers: implicit-prompt preferences, KTO's
unpaired labels and prompt-only rows (GRPO, RLOO and other online trainers generate the answers).

Implicit prompt (TRL): `chosen` and `rejected` each hold the whole exchange, and the trainer finds the
prompt as their common beginning. Standard text joins the plain prompt and the answer with a blank
line (a multi-turn prompt is an HH-style transcript ending "Assistant:", then the answer);
conversational is the prompt's turns followed by the assistant turn.
"""

from __future__ import annotations

from typing import Any

from annotation.exports.sources import SourceBatch
from annotation.exports.text import assistant_turn, hh_transcript, turns_as_text


def implicit_text(turns: list[dict[str, str]], answer: str) -> str:
    if len(turns) == 1 and turns[0]["role"] == "user":
        return f"{turns[0]['content']}\n\n{answer}"
    return hh_transcript(turns, answer=answer)


def pair_meta(row, batch: SourceBatch) -> dict[str, Any]:
    """The columns every pair row carries after its texts; `margin`/`tie` when the export asks."""
    prompt_id, ranking_id, labeler_id, better, worse, created_at = row[:6]
    meta = {
        "prompt_id": prompt_id,
        "chosen_id": better,
        "rejected_id": worse,
        "ranking_id": ranking_id,
        "labeler": "consensus" if ranking_id is None and labeler_id is None else batch.names[labeler_id],
        "created_at": created_at,
    }
    if batch.extra.get("margin"):
        meta["margin"] = row[6]
    if batch.extra.get("tie"):
        meta["tie"] = row[7]
    return meta


def render_pairs_implicit(batch: SourceBatch) -> list[dict[str, Any]]:
    texts = batch.candidates
    return [
        {
            "chosen": implicit_text(batch.prompts[row[0]], texts[row[3]]),
            "rejected": implicit_text(batch.prompts[row[0]], texts[row[4]]),
            **pair_meta(row, batch),
        }
        for row in batch.rows
    ]


def render_pairs_implicit_conversational(batch: SourceBatch) -> list[dict[str, Any]]:
    texts = batch.candidates
    return [
        {
            "chosen": batch.prompts[row[0]] + assistant_turn(texts[row[3]]),
            "rejected": batch.prompts[row[0]] + assistant_turn(texts[row[4]]),
            **pair_meta(row, batch),
        }
        for row in batch.rows
    ]


def _kto_meta(row, batch: SourceBatch) -> dict[str, Any]:
    prompt_id, ranking_id, labeler_id, candidate_id, _label, created_at = row
    return {
        "prompt_id": prompt_id,
        "candidate_id": candidate_id,
        "ranking_id": ranking_id,
        "labeler": "consensus" if ranking_id is None and labeler_id is None else batch.names[labeler_id],
        "created_at": created_at,
    }


def render_kto(batch: SourceBatch) -> list[dict[str, Any]]:
    prompt_text = {pid: turns_as_text(turns) for pid, turns in batch.prompts.items()}
    return [
        {
            "prompt": prompt_text[row[0]],
            "completion": batch.candidates[row[3]],
            "label": row[4],
            **_kto_meta(row, batch),
        }
        for row in batch.rows
    ]


def render_kto_conversational(batch: SourceBatch) -> list[dict[str, Any]]:
    return [
        {
            "prompt": batch.prompts[row[0]],
            "completion": assistant_turn(batch.candidates[row[3]]),
            "label": row[4],
            **_kto_meta(row, batch),
        }
        for row in batch.rows
    ]


def render_prompt_only(batch: SourceBatch) -> list[dict[str, Any]]:
    return [{"prompt": turns_as_text(batch.prompts[pid]), "prompt_id": pid} for pid in batch.rows]


def render_prompt_only_conversational(batch: SourceBatch) -> list[dict[str, Any]]:
    return [{"prompt": batch.prompts[pid], "prompt_id": pid} for pid in batch.rows]
