"""Fast JSONL for the pair formats: each distinct text is JSON-encoded once per batch.

The rows are the same as formats.render_pairs / render_pairs_conversational / render_hh_rlhf /
unpaired.render_pairs_implicit(_conversational) would give to json.dumps (tests compare them with the
dict path). Only for comparison rows: pairs derived under options and split exports take the dict path.
"""

from __future__ import annotations

from typing import Any

from annotation.exports.sources import SourceBatch
from annotation.exports.text import assistant_turn, hh_transcript, json_encode, turns_as_text
from annotation.exports.unpaired import implicit_text


def _pair_lines(
    batch: SourceBatch, *, prompt_json: dict[int, str], answer_json: dict[tuple[int, int], str], keys
) -> str:
    """JSONL for pair rows, assembled from JSON fragments each encoded once per batch.

    A candidate's text appears in up to 2(K-1) rows of a prompt and the prompt's in every row, so
    encoding each distinct text once instead of once per row is most of the JSONL export's speed.
    The lines hold exactly what json.dumps of the render_* records would.
    """
    encode = json_encode
    names: dict[Any, str] = {}
    prompt_key, chosen_key, rejected_key = keys
    lines = []
    for prompt_id, ranking_id, labeler_id, better, worse, created_at in batch.rows:
        name_key = (ranking_id is None, labeler_id)
        name = names.get(name_key)
        if name is None:
            raw = "consensus" if ranking_id is None and labeler_id is None else batch.names[labeler_id]
            name = names[name_key] = encode(raw)
        head = f'"{prompt_key}":{prompt_json[prompt_id]},' if prompt_key else ""
        lines.append(
            f'{{{head}"{chosen_key}":{answer_json[(prompt_id, better)]},"{rejected_key}":{answer_json[(prompt_id, worse)]},'
            f'"prompt_id":{prompt_id},"chosen_id":{better},"rejected_id":{worse},'
            f'"ranking_id":{"null" if ranking_id is None else ranking_id},"labeler":{name},"created_at":"{created_at}"}}\n'
        )
    return "".join(lines)


def _answers_json(batch: SourceBatch, wrap) -> dict[tuple[int, int], str]:
    pairs = {(row[0], c) for row in batch.rows for c in (row[3], row[4])}
    return {(pid, cid): json_encode(wrap(batch, pid, cid)) for pid, cid in pairs}


def jsonl_pairs(batch: SourceBatch) -> tuple[str, int]:
    prompts = {pid: json_encode(turns_as_text(turns)) for pid, turns in batch.prompts.items()}
    answers = _answers_json(batch, lambda b, pid, cid: b.candidates[cid])
    text = _pair_lines(batch, prompt_json=prompts, answer_json=answers, keys=("prompt", "chosen", "rejected"))
    return text, len(batch.rows)


def jsonl_pairs_conversational(batch: SourceBatch) -> tuple[str, int]:
    prompts = {pid: json_encode(turns) for pid, turns in batch.prompts.items()}
    answers = _answers_json(batch, lambda b, pid, cid: assistant_turn(b.candidates[cid]))
    text = _pair_lines(batch, prompt_json=prompts, answer_json=answers, keys=("prompt", "chosen", "rejected"))
    return text, len(batch.rows)


def jsonl_hh_rlhf(batch: SourceBatch) -> tuple[str, int]:
    answers = _answers_json(
        batch, lambda b, pid, cid: hh_transcript(b.prompts[pid], answer=b.candidates[cid])
    )
    text = _pair_lines(batch, prompt_json={}, answer_json=answers, keys=(None, "chosen", "rejected"))
    return text, len(batch.rows)


def jsonl_pairs_implicit(batch: SourceBatch) -> tuple[str, int]:
    answers = _answers_json(batch, lambda b, pid, cid: implicit_text(b.prompts[pid], b.candidates[cid]))
    text = _pair_lines(batch, prompt_json={}, answer_json=answers, keys=(None, "chosen", "rejected"))
    return text, len(batch.rows)


def jsonl_pairs_implicit_conversational(batch: SourceBatch) -> tuple[str, int]:
    answers = _answers_json(batch, lambda b, pid, cid: b.prompts[pid] + assistant_turn(b.candidates[cid]))
    text = _pair_lines(batch, prompt_json={}, answer_json=answers, keys=(None, "chosen", "rejected"))
    return text, len(batch.rows)
