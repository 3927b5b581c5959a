"""The frozen evaluation set: a fixed share of a project's prompts that no reward-model version trains
on, so every version's accuracy, agreement and calibration are measured on the same comparisons.

Membership is a rule, not a draw: a prompt is in the set when the SHA-256 of its conversation
root's content hash, under a salt of its own, read as a number in [0, 1), is below the set's share
(annotation/exports/split.py splits exports the same way, under another salt, so the two choices are
independent). A conversation's turns follow their root, so no turn of an evaluation conversation
teaches the model the history of another. The set is created, with the share then in the settings,
when the project first trains; each later training adds the prompts created since by the same rule,
so the set grows with the project but no prompt ever changes side, and rows are only ever added.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import transaction

from annotation.models import Project, Prompt
from rewards.models import EvaluationPrompt, EvaluationSet

EVALUATION_SALT = b"rlhf-reward-evaluation:v1:"


def evaluation_member(*, content_hash: str, share: float) -> bool:
    """Whether a (root) prompt with this content hash belongs to an evaluation set of this share."""
    digest = hashlib.sha256(EVALUATION_SALT + content_hash.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@transaction.atomic
def evaluation_set_sync(*, project: Project) -> EvaluationSet:
    """The project's evaluation set, created on the first call (with REWARD_MODEL_EVALUATION_SHARE),
    with every prompt the rule puts in it that is not a member yet added. Idempotent; concurrent
    calls for one project wait for each other on the set's row."""
    evaluation_set, _ = EvaluationSet.objects.get_or_create(
        project=project, defaults={"share": float(settings.REWARD_MODEL_EVALUATION_SHARE)}
    )
    evaluation_set = EvaluationSet.objects.select_for_update().get(pk=evaluation_set.pk)
    parents: dict[int, int | None] = {}
    hashes: dict[int, str] = {}
    for prompt_id, parent_id, content_hash in Prompt.objects.filter(project=project).values_list(
        "id", "parent_id", "content_hash"
    ):
        parents[prompt_id], hashes[prompt_id] = parent_id, content_hash
    members = set(evaluation_set.members.values_list("prompt_id", flat=True))
    new = [
        prompt_id
        for prompt_id in parents
        if prompt_id not in members
        and evaluation_member(content_hash=hashes[_root(prompt_id, parents)], share=evaluation_set.share)
    ]
    EvaluationPrompt.objects.bulk_create(
        [EvaluationPrompt(evaluation_set=evaluation_set, prompt_id=prompt_id) for prompt_id in new],
        ignore_conflicts=True,
        batch_size=1000,
    )
    return evaluation_set


def _root(prompt_id: int, parents: dict[int, int | None]) -> int:
    """The prompt a conversation started from (itself for a prompt of the pool)."""
    seen = {prompt_id}
    while (parent := parents.get(prompt_id)) is not None and parent in parents and parent not in seen:
        seen.add(parent)
        prompt_id = parent
    return prompt_id
