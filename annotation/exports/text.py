"""Text renderings shared by the export formats: plain prompts, HH-RLHF transcripts, JSON fragments."""

from __future__ import annotations

import json

HH_LABELS = {"system": "System", "user": "Human", "assistant": "Assistant"}

json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def turns_as_text(turns: list[dict[str, str]]) -> str:
    """A single user turn is its text; anything longer becomes an HH-style transcript."""
    if len(turns) == 1 and turns[0]["role"] == "user":
        return turns[0]["content"]
    return hh_transcript(turns, answer=None)


def hh_transcript(turns: list[dict[str, str]], *, answer: str | None) -> str:
    """Anthropic HH-RLHF text: "\\n\\nHuman: ...\\n\\nAssistant: ..." (a system turn is "System:")."""
    parts = [f"\n\n{HH_LABELS[turn['role']]}: {turn['content']}" for turn in turns]
    parts.append("\n\nAssistant:" if answer is None else f"\n\nAssistant: {answer}")
    return "".join(parts)


def assistant_turn(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]
