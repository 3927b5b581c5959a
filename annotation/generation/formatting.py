"""Plain-text prompts for base models.

A base model (the packaged Gemma 3 270M is one) has never seen a chat template: given one it
tends to stop at once. It does continue a `Question: ... / Answer:` transcript well, so the
conversation is written that way and sampling stops where the model would start the next question.
"""

from __future__ import annotations

from collections.abc import Iterable

# Stored with each candidate so a later change of format is visible in the provenance.
PROMPT_FORMAT = "question-answer-v1"
QUESTION = "Question:"
ANSWER = "Answer:"
# The model ends an answer by starting the next question, or by answering again; cut at either.
BASE_MODEL_STOP = ("\n" + QUESTION, "\n" + ANSWER)


def turns_to_plain_text(*, turns: list[dict[str, str]]) -> str:
    """Render {role, content} turns as a transcript ending in `Answer:` for the model to continue.

    A leading system turn becomes a preamble paragraph; user turns are questions and assistant
    turns their answers. Expects normalised turns (see `services.prompts.turns_normalise`).
    """
    blocks: list[str] = []
    for turn in turns:
        role, content = turn["role"], turn["content"].strip()
        if role == "system":
            blocks.append(content + "\n\n")
        elif role == "user":
            blocks.append(f"{QUESTION} {content}\n")
        else:
            blocks.append(f"{ANSWER} {content}\n\n")
    return "".join(blocks) + ANSWER


def stop_sequences_merge(*, project_stop: Iterable[str], base_model: bool) -> tuple[str, ...]:
    """The project's stop sequences, plus the transcript's own for a base model, without repeats."""
    merged: list[str] = []
    for stop in [*project_stop, *(BASE_MODEL_STOP if base_model else ())]:
        if stop and stop not in merged:
            merged.append(stop)
    return tuple(merged)


def completion_clean(*, text: str) -> str:
    """The answer as a labeler should see it: no surrounding whitespace, no dangling `Question:`."""
    cleaned = text.strip()
    if cleaned.endswith(QUESTION):
        cleaned = cleaned[: -len(QUESTION)].rstrip()
    return cleaned
