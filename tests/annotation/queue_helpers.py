"""Test data for the queue tests: candidates are written directly (generation is another module's job)."""

from __future__ import annotations

import hashlib

from annotation.models import Candidate, Prompt


def candidates_add(prompt: Prompt, count: int, *, prefix: str = "Answer") -> list[Candidate]:
    candidates = []
    for index in range(count):
        text = f"{prefix} {index} to prompt {prompt.pk}: " + "lorem ipsum " * (index + 1)
        candidates.append(
            Candidate.objects.create(
                prompt=prompt,
                text=text,
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                backend="embedded",
                model_name="secret-model-name-7b",
                seed=index,
            )
        )
    return candidates
