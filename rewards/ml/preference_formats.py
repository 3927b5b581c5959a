"""Parsing external preference data into (conversation, chosen, rejected). No Django, no database.

Two formats:
- TRL's preference JSONL: {"prompt", "chosen", "rejected"}, each a plain string, or conversational:
  prompt a list of {role, content} turns, chosen/rejected lists holding one assistant message.
  Without "prompt" (TRL's implicit-prompt form) the conversations' shared leading turns are the prompt.
- HH-RLHF transcripts: {"chosen", "rejected"} strings of "\\n\\nHuman: " / "\\n\\nAssistant: " turns;
  the prompt is the transcript up to and including the last "\\n\\nAssistant:", the answer what follows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HH_ASSISTANT = "\n\nAssistant:"
HH_TURN = re.compile(r"\n\n(Human|Assistant):")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class PreferenceFormatError(ValueError):
    """One line cannot be read as a preference pair; the message says why."""


@dataclass
class PreferencePair:
    line: int
    turns: list[dict[str, Any]]
    chosen: str
    rejected: str


def hh_split(transcript: str) -> tuple[list[dict[str, str]], str]:
    """(prompt turns, answer) of one HH-RLHF transcript."""
    cut = transcript.rfind(HH_ASSISTANT)
    if cut < 0:
        raise PreferenceFormatError("transcript has no '\\n\\nAssistant:' turn")
    prompt_text, answer = transcript[: cut + len(HH_ASSISTANT)], transcript[cut + len(HH_ASSISTANT) :]
    pieces = HH_TURN.split(prompt_text)
    if pieces[0].strip():
        raise PreferenceFormatError("transcript must start with '\\n\\nHuman:'")
    turns = [
        {"role": HH_ROLES[speaker], "content": content.strip()}
        for speaker, content in zip(pieces[1::2], pieces[2::2], strict=True)
    ]
    # The split leaves the final, empty "Assistant:" marker as a turn: that is the answer's slot.
    if not turns or turns[-1]["role"] != "assistant" or turns[-1]["content"]:
        raise PreferenceFormatError("transcript does not end with an assistant answer")
    return turns[:-1], answer.strip()


def _answer_text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        message = value[0]
        if message.get("role") != "assistant" or not isinstance(message.get("content"), str):
            raise PreferenceFormatError(f"'{name}' must hold one assistant message with text content")
        return message["content"].strip()
    raise PreferenceFormatError(f"'{name}' must be a string or a list with one assistant message")


def _implicit_prompt(chosen: list, rejected: list) -> tuple[list[dict[str, Any]], str, str]:
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    if len(chosen) != shared + 1 or len(rejected) != shared + 1:
        raise PreferenceFormatError("'chosen' and 'rejected' must differ only in their last message")
    return (
        chosen[:shared],
        _answer_text(chosen[shared:], "chosen"),
        _answer_text(rejected[shared:], "rejected"),
    )


def record_parse(record: Any, *, line: int) -> PreferencePair:
    """One decoded JSON object -> PreferencePair, or PreferenceFormatError with the reason."""
    if not isinstance(record, dict):
        raise PreferenceFormatError("each line must be a JSON object")
    chosen, rejected, prompt = record.get("chosen"), record.get("rejected"), record.get("prompt")
    if chosen is None or rejected is None:
        raise PreferenceFormatError("missing 'chosen' or 'rejected'")
    if prompt is not None:
        if isinstance(prompt, str):
            if not prompt.strip():
                raise PreferenceFormatError("'prompt' is empty")
            turns: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, list):
            turns = prompt
        else:
            raise PreferenceFormatError("'prompt' must be a string or a list of {role, content} messages")
        return PreferencePair(
            line=line,
            turns=turns,
            chosen=_answer_text(chosen, "chosen"),
            rejected=_answer_text(rejected, "rejected"),
        )
    if isinstance(chosen, str) and isinstance(rejected, str):
        if HH_ASSISTANT not in chosen:
            raise PreferenceFormatError("no 'prompt', and 'chosen' is not an HH-RLHF transcript")
        chosen_turns, chosen_answer = hh_split(chosen)
        rejected_turns, rejected_answer = hh_split(rejected)
        if chosen_turns != rejected_turns:
            raise PreferenceFormatError("'chosen' and 'rejected' are answers to different conversations")
        return PreferencePair(line=line, turns=chosen_turns, chosen=chosen_answer, rejected=rejected_answer)
    if isinstance(chosen, list) and isinstance(rejected, list):
        turns, chosen_answer, rejected_answer = _implicit_prompt(chosen, rejected)
        if not turns:
            raise PreferenceFormatError("no 'prompt', and the conversations share no leading turns")
        return PreferencePair(line=line, turns=turns, chosen=chosen_answer, rejected=rejected_answer)
    raise PreferenceFormatError("'chosen' and 'rejected' must both be strings or both be message lists")


def jsonl_records(text: str) -> Iterator[tuple[int, PreferencePair | None, str | None]]:
    """(line number, pair, None) or (line number, None, reason) for each non-blank line."""
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            yield number, None, f"invalid JSON: {error.msg} at column {error.colno}"
            continue
        try:
            pair = record_parse(record, line=number)
        except PreferenceFormatError as error:
            yield number, None, str(error)
            continue
        if not pair.chosen or not pair.rejected:
            yield number, None, "'chosen' or 'rejected' answer is empty"
            continue
        yield number, pair, None
