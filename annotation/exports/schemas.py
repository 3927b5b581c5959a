"""Parquet schemas of the export formats, kept apart so that pyarrow (about 55 MB resident) is imported
only by exports that write Parquet."""

from __future__ import annotations

from functools import cache

import pyarrow as pa

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_MESSAGES = pa.list_(_MESSAGE)


_PAIR_META = [
    ("prompt_id", pa.int64()),
    ("chosen_id", pa.int64()),
    ("rejected_id", pa.int64()),
    ("ranking_id", pa.int64()),
    ("labeler", pa.string()),
    ("created_at", pa.string()),
]


# Where a conversation pair's turn sits, and what its answers are (annotation/exports/conversations.py).
_TURN_META = [
    ("root_prompt_id", pa.int64()),
    ("parent_prompt_id", pa.int64()),
    ("turn", pa.int64()),
    ("none_acceptable", pa.bool_()),
    ("chosen_source", pa.string()),
    ("rejected_source", pa.string()),
    ("chosen_edited_from", pa.int64()),
    ("rejected_edited_from", pa.int64()),
    ("edit_of_rejected", pa.bool_()),
]


_SFT_META = [
    ("prompt_id", pa.int64()),
    ("demonstration_id", pa.int64()),
    ("labeler", pa.string()),
    ("seconds_spent", pa.float64()),
    ("created_at", pa.string()),
]


_ORDER = pa.list_(pa.list_(pa.int64()))
_CANDIDATE = pa.struct(
    [
        ("id", pa.int64()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("backend", pa.string()),
        ("model_name", pa.string()),
        ("sampling_params", pa.string()),
        ("seed", pa.int64()),
        ("finish_reason", pa.string()),
        ("demonstration_id", pa.int64()),
    ]
)
_ITEM = pa.struct(
    [
        ("candidate_id", pa.int64()),
        ("rank", pa.int64()),
        ("rating", pa.int64()),
        ("flags", pa.list_(pa.string())),
    ]
)
_RANKING = pa.struct(
    [
        ("ranking_id", pa.int64()),
        ("labeler", pa.string()),
        ("source", pa.string()),
        ("is_gold", pa.bool_()),
        ("none_acceptable", pa.bool_()),
        ("order", _ORDER),
        ("items", pa.list_(_ITEM)),
        ("comment", pa.string()),
        ("seconds_spent", pa.float64()),
        ("created_at", pa.string()),
    ]
)


_KTO_META = [
    ("prompt_id", pa.int64()),
    ("candidate_id", pa.int64()),
    ("ranking_id", pa.int64()),
    ("labeler", pa.string()),
    ("created_at", pa.string()),
]

# Columns an option adds at the end of each row: pair formats' margin and tie, any format's split.
_OPTIONAL_COLUMNS = {"margin": pa.float64(), "tie": pa.bool_(), "split": pa.string()}


@cache
def schema_for(name: str, extras: tuple[str, ...] = ()) -> pa.Schema:
    """The format's schema, with the optional columns `extras` (in that order) appended."""
    schema = _base_schema(name)
    for column in extras:
        schema = schema.append(pa.field(column, _OPTIONAL_COLUMNS[column]))
    return schema


def _base_schema(name: str) -> pa.Schema:
    return {
        "pairs": pa.schema(
            [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()), *_PAIR_META]
        ),
        "pairs_conversational": pa.schema(
            [("prompt", _MESSAGES), ("chosen", _MESSAGES), ("rejected", _MESSAGES), *_PAIR_META]
        ),
        "pairs_implicit": pa.schema([("chosen", pa.string()), ("rejected", pa.string()), *_PAIR_META]),
        "pairs_implicit_conversational": pa.schema(
            [("chosen", _MESSAGES), ("rejected", _MESSAGES), *_PAIR_META]
        ),
        "kto": pa.schema(
            [("prompt", pa.string()), ("completion", pa.string()), ("label", pa.bool_()), *_KTO_META]
        ),
        "kto_conversational": pa.schema(
            [("prompt", _MESSAGES), ("completion", _MESSAGES), ("label", pa.bool_()), *_KTO_META]
        ),
        "prompt_only": pa.schema([("prompt", pa.string()), ("prompt_id", pa.int64())]),
        "prompt_only_conversational": pa.schema([("prompt", _MESSAGES), ("prompt_id", pa.int64())]),
        "hh_rlhf": pa.schema([("chosen", pa.string()), ("rejected", pa.string()), *_PAIR_META]),
        "sft": pa.schema([("prompt", pa.string()), ("completion", pa.string()), *_SFT_META]),
        "sft_conversational": pa.schema([("prompt", _MESSAGES), ("completion", _MESSAGES), *_SFT_META]),
        "sft_messages": pa.schema([("messages", _MESSAGES), *_SFT_META]),
        "conversation_pairs": pa.schema(
            [("prompt", _MESSAGES), ("chosen", _MESSAGES), ("rejected", _MESSAGES), *_PAIR_META, *_TURN_META]
        ),
        "rankings": pa.schema(
            [
                ("prompt_id", pa.int64()),
                ("prompt", _MESSAGES),
                ("candidates", pa.list_(_CANDIDATE)),
                ("rankings", pa.list_(_RANKING)),
                ("consensus_order", _ORDER),
                ("agreement", pa.float64()),
                ("kendall_tau", pa.float64()),
            ]
        ),
    }[name]
