"""Data for export, agreement and permission tests, made through the real ranking service."""

from __future__ import annotations

import hashlib

from annotation.models import Candidate, Demonstration, Prompt
from annotation.services.prompts import prompt_create
from annotation.services.rankings import ItemInput, ranking_record


def candidate_make(prompt: Prompt, text: str, **provenance) -> Candidate:
    return Candidate.objects.create(
        prompt=prompt, text=text, content_hash=hashlib.sha256(text.encode()).hexdigest(), **provenance
    )


def ranked_prompt(project, index: int, labelers, orders, *, flags=None, turns=None):
    """A prompt with 4 candidates, ranked by each labeler with the order given as candidate indexes.

    `orders[i]` is a list of tie groups of indexes 0-3 for `labelers[i]`; `flags` maps an index to the
    flags labelers[0] gives it.
    """
    prompt = prompt_create(
        project=project, turns=turns or [{"role": "user", "content": f"Question {index}?"}]
    )
    candidates = [
        candidate_make(
            prompt,
            f"Answer {index}.{n}",
            backend="embedded",
            model_name="gemma-test",
            sampling_params={"temperature": 0.9},
            seed=n,
        )
        for n in range(4)
    ]
    ids = [c.pk for c in candidates]
    for position, (labeler, order) in enumerate(zip(labelers, orders, strict=True)):
        items = {ids[n]: ItemInput(rating=7 - n) for n in range(4)}
        if flags and position == 0:
            for n, flag_list in flags.items():
                items[ids[n]] = ItemInput(rating=2, flags=flag_list)
        ranking_record(
            prompt=prompt,
            candidate_ids=ids,
            order=[[ids[n] for n in group] for group in order],
            labeler=labeler,
            items=items,
        )
    return prompt, candidates


def demonstration_make(prompt: Prompt, labeler, text: str) -> Demonstration:
    return Demonstration.objects.create(prompt=prompt, labeler=labeler, text=text, seconds_spent=12.5)
