"""The train/test split by prompt: every row of one prompt lands on the same side, and the side never
changes when the project grows or the export is run again.

A prompt's side is a hash of its content hash (SHA-256 of its normalised turns) under a fixed salt,
read as a number in [0, 1): below `test_fraction` is test. Nothing else goes in, so a re-export, an
export with more data, with other filters or of another format puts the prompt on the same side, and
raising the fraction only moves prompts from train to test. The salt keeps the split independent of
any other use of the content hash (a shard key, say).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from annotation.models import Prompt

SPLIT_SALT = b"rlhf-export-split:v1:"


def split_side(*, content_hash: str, test_fraction: float) -> str:
    digest = hashlib.sha256(SPLIT_SALT + content_hash.encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def with_split(
    batches: Iterable[list[dict[str, Any]]], *, test_fraction: float
) -> Iterator[list[dict[str, Any]]]:
    """The batches with a `split` column, from each record's `prompt_id` (one query per batch).

    A record of a conversation turn that names its `root_prompt_id` takes its root's side, so a whole
    conversation lands on one side: a test turn's history is never a train prompt's."""
    for records in batches:
        keys = [record.get("root_prompt_id", record["prompt_id"]) for record in records]
        hashes = dict(Prompt.objects.filter(pk__in=set(keys)).values_list("pk", "content_hash"))
        sides = {pk: split_side(content_hash=h, test_fraction=test_fraction) for pk, h in hashes.items()}
        for record, key in zip(records, keys, strict=True):
            record["split"] = sides[key]
        yield records
