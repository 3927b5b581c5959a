"""Conversation trees in Open-Assistant's message-tree shape: one JSON line per root prompt.

Open-Assistant (oasst-data's README, "Message Trees") writes each tree as its first prompter message
with its replies nested under `replies`, each node naming its `parent_id`. Here a root prompt (one
with no parent: a prompt of the pool, or a labeler's own opening) is a tree, and:

- a prompt's user turn is a `prompter` node ("prompt-<id>"); a root's earlier turns, if it was
  imported with some, come first as a chain ("prompt-<id>-turn-<i>"); a leading system turn goes
  to the tree's `system` (Open-Assistant has no system role);
- its replies (Candidates) are `assistant` nodes ("candidate-<id>"), best first: `rank` is the reply's
  tie group (from 0) in the ranked-pairs consensus of the turn's rankings, null when unranked;
  `synthetic` is true for a model sample, false for a labeler's edit (`edited_from` names the reply it
  rewrote) or own reply (`source` "demonstration"), null for an import; `model_name` its model;
- demonstrations of the prompt that are no reply are `assistant` nodes too ("demonstration-<id>");
- a prompt that continues the conversation with a reply is a `prompter` node under that reply.

Labels follow Open-Assistant's {name: {value, count}}: on a prompter node, `none_acceptable` (the share
of the turn's rankings that found no reply acceptable, over how many rankings); on a reply, `quality`
(its mean 1-7 rating mapped onto 0-1, over how many ratings) and one entry per flag (the share of the
rankings that placed it which gave that flag). A prompter node's `events.ranking` lists each ranking
of its replies: `ranked_message_ids` best first, `ranking` the tie group of each, `not_rankable`
Open-Assistant's name for "none acceptable". `user_id` is the labeler's name (or pseudonym).

Trees nest to any depth, which Parquet's fixed schemas cannot hold: JSONL (plain or gzipped) only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from statistics import fmean
from typing import Any

from annotation.exports.filters import ExportFilters, LabelerNames
from annotation.exports.sources import ITERATOR_CHUNK, SourceBatch
from annotation.models import Prompt
from annotation.models.prompts import CandidateSource
from annotation.selectors.conversations import Forest, consensus_ranks, conversation_forest_load

TREES_PER_BATCH = 200

CARD_DETAILS = """\
One line per conversation tree, in Open-Assistant's message-tree shape (oasst-data's README):
`{message_tree_id, tree_state, origin, prompt_id, system, created_at, prompt}`, where `prompt` is the
first user message and every message has `message_id`, `parent_id`, `user_id` (labeler name or
pseudonym), `created_date`, `role` (`prompter` or `assistant`), `text`, `rank`, `synthetic`,
`model_name`, `source`, `edited_from`, `prompt_id`, `candidate_id`, `labels`, `events` and `replies`.

A root prompt of the project is a tree (with no conversation yet, just its replies). Under a prompter
message hang the replies to that turn, best first: `rank` is the reply's tie group (from 0) in the
ranked-pairs consensus of the turn's rankings (null: never ranked); `synthetic` is true for a model
sample and false for a labeler's edit (`source` `edit`, `edited_from` naming the reply it rewrote) or
own reply (`source` `demonstration`). Under a reply hangs the next user turn of each conversation that
continued with it. `labels` use Open-Assistant's `{value, count}`: `none_acceptable` on a prompter
message (share of its rankings that found no reply acceptable), `quality` on a reply (mean 1-7 rating
mapped to 0-1) and one entry per flag (share of the rankings that placed it which gave the flag).
`events.ranking` on a prompter message lists its rankings: `ranked_message_ids` best first, `ranking`
the tie group of each, `not_rankable` for none acceptable. JSONL only: trees nest to any depth.
"""
ROLES = {"user": "prompter", "assistant": "assistant", "system": "system"}


def _roots(*, project_id: int, filters: ExportFilters):
    queryset = Prompt.objects.filter(project_id=project_id, parent__isnull=True)
    if filters.date_from:
        queryset = queryset.filter(created_at__gte=filters.date_from)
    if filters.date_to:
        queryset = queryset.filter(created_at__lt=filters.date_to)
    return queryset


def tree_row_count(*, project_id: int, filters: ExportFilters) -> int:
    """One tree per root prompt made within the dates (the dates bound when the root was added)."""
    return _roots(project_id=project_id, filters=filters).count()


def tree_batches(*, project_id: int, filters: ExportFilters) -> Iterator[SourceBatch]:
    """Batches of whole trees (a Forest in `extra["forest"]`, its roots as the rows), in root id order."""
    root_ids = (
        _roots(project_id=project_id, filters=filters)
        .order_by("id")
        .values_list("pk", flat=True)
        .iterator(chunk_size=ITERATOR_CHUNK)
    )
    names = LabelerNames(anonymise=filters.anonymise, project_id=project_id)
    while True:
        chunk = list(islice(root_ids, TREES_PER_BATCH))
        if not chunk:
            return
        forest = conversation_forest_load(root_ids=chunk, counting_only=True)  # only work that counts
        names.load(set(forest.user_ids()))
        yield SourceBatch(
            rows=forest.roots,
            prompts={},
            candidates={},
            names=names,
            source_rows=len(chunk),
            extra={"forest": forest},
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _label(value: float, count: int) -> dict[str, Any]:
    """Open-Assistant's label: a mean in 0-1 over `count` judgements (4 decimals: enough for a share
    of judgements, and short enough to read back unchanged through any JSON reader)."""
    return {"value": round(value, 4), "count": count}


def _node(*, message_id: str, parent_id: str | None, role: str, text: str, **fields: Any) -> dict[str, Any]:
    """A message node with every key present (null where it does not apply), so rows share columns."""
    node: dict[str, Any] = {
        "message_id": message_id,
        "parent_id": parent_id,
        "user_id": None,
        "created_date": None,
        "role": role,
        "text": text,
        "lang": None,
        "rank": None,
        "synthetic": None,
        "model_name": None,
        "source": None,
        "edited_from": None,
        "prompt_id": None,
        "candidate_id": None,
        "labels": {},
        "events": {},
        "replies": [],
    }
    node.update(fields)
    return node


class _TreeWriter:
    """Turns one tree of a Forest into nested nodes; `latest` follows the newest row it met."""

    def __init__(self, forest: Forest, names: LabelerNames) -> None:
        self.forest = forest
        self.names = names
        self.latest: datetime | None = None

    def _seen(self, moment: datetime) -> None:
        if self.latest is None or moment > self.latest:
            self.latest = moment

    def chain(self, turns: list[dict[str, str]], *, first: int, prompt_id: int, parent_id: str | None):
        """Nodes for turns[first:], each the only reply of the one before: (top node, last node).

        The last turn is the prompt's user turn, the node its replies hang from."""
        top: dict[str, Any] | None = None
        last: dict[str, Any] | None = None
        for index in range(first, len(turns)):
            is_last = index == len(turns) - 1
            node = _node(
                message_id=f"prompt-{prompt_id}" if is_last else f"prompt-{prompt_id}-turn-{index}",
                parent_id=last["message_id"] if last is not None else parent_id,
                role=ROLES.get(turns[index]["role"], turns[index]["role"]),
                text=turns[index]["content"],
                prompt_id=prompt_id,
                source=None if is_last else "context",
            )
            if last is None:
                top = node
            else:
                last["replies"].append(node)
            last = node
        assert top is not None and last is not None, "a prompt has at least its user turn"
        return top, last

    def turn(self, prompt_id: int, node: dict[str, Any]) -> None:
        """Fill the prompter `node` of `prompt_id`: its labels, ranking events and replies, recursively."""
        forest, names = self.forest, self.names
        row = forest.prompts[prompt_id]
        self._seen(row["created_at"])
        node["user_id"] = names[forest.authors.get(prompt_id)]
        node["created_date"] = _iso(row["created_at"])
        rankings = forest.rankings.get(prompt_id, [])
        ranks = consensus_ranks(rankings)
        if rankings:
            marked = sum(ranking["none_acceptable"] for ranking in rankings)
            node["labels"] = {"none_acceptable": _label(marked / len(rankings), len(rankings))}
            node["events"] = {"ranking": [self._ranking_event(ranking) for ranking in rankings]}
        continuing: dict[int | None, list[int]] = defaultdict(list)
        for child_id in forest.children.get(prompt_id, []):
            continuing[forest.prompts[child_id]["parent_candidate_id"]].append(child_id)
        replies = []
        unranked = len(ranks)
        for candidate in sorted(
            forest.candidates.get(prompt_id, []), key=lambda c: (ranks.get(c["id"], unranked), c["id"])
        ):
            reply = self._reply(candidate, parent_id=node["message_id"], rank=ranks.get(candidate["id"]))
            reply["labels"] = self._reply_labels(candidate["id"], rankings)
            for child_id in continuing.pop(candidate["id"], []):
                reply["replies"].append(
                    self._continuation(child_id, first=len(row["turns"]) + 1, under=reply)
                )
            replies.append(reply)
        for demonstration in forest.demonstrations.get(prompt_id, []):
            self._seen(demonstration["created_at"])
            replies.append(
                _node(
                    message_id=f"demonstration-{demonstration['id']}",
                    parent_id=node["message_id"],
                    role="assistant",
                    text=demonstration["text"],
                    user_id=names[demonstration["labeler_id"]],
                    created_date=_iso(demonstration["created_at"]),
                    synthetic=False,
                    source=CandidateSource.DEMONSTRATION.value,
                    prompt_id=prompt_id,
                )
            )
        # Continuations whose reply is gone (deleted) keep their own copy of it, under the turn.
        for child_ids in continuing.values():
            for child_id in child_ids:
                replies.append(self._continuation(child_id, first=len(row["turns"]), under=node))
        node["replies"] = replies

    def _continuation(self, child_id: int, *, first: int, under: dict[str, Any]) -> dict[str, Any]:
        top, last = self.chain(
            self.forest.prompts[child_id]["turns"],
            first=first,
            prompt_id=child_id,
            parent_id=under["message_id"],
        )
        self.turn(child_id, last)
        return top

    def _reply(self, candidate: dict[str, Any], *, parent_id: str, rank: int | None) -> dict[str, Any]:
        self._seen(candidate["created_at"])
        source = candidate["source"]
        author = candidate["edited_by_id"] or candidate["demonstration__labeler_id"]
        return _node(
            message_id=f"candidate-{candidate['id']}",
            parent_id=parent_id,
            role="assistant",
            text=candidate["text"],
            user_id=self.names[author],
            created_date=_iso(candidate["created_at"]),
            rank=rank,
            synthetic=None if source == CandidateSource.IMPORT else source == CandidateSource.MODEL,
            model_name=candidate["model_name"] or None,
            source=source,
            edited_from=f"candidate-{candidate['edited_from_id']}" if candidate["edited_from_id"] else None,
            prompt_id=candidate["prompt_id"],
            candidate_id=candidate["id"],
        )

    def _reply_labels(self, candidate_id: int, rankings: list[dict[str, Any]]) -> dict[str, Any]:
        placed = [
            self.forest.items[key] for r in rankings if (key := (r["id"], candidate_id)) in self.forest.items
        ]
        labels: dict[str, Any] = {}
        ratings = [rating for _rank, rating, _flags in placed if rating is not None]
        if ratings:
            labels["quality"] = _label(fmean((rating - 1) / 6 for rating in ratings), len(ratings))
        flag_counts: dict[str, int] = defaultdict(int)
        for _rank, _rating, flags in placed:
            for flag in set(flags):
                flag_counts[flag] += 1
        for flag in sorted(flag_counts):
            labels[flag] = _label(flag_counts[flag] / len(placed), len(placed))
        return labels

    def _ranking_event(self, ranking: dict[str, Any]) -> dict[str, Any]:
        self._seen(ranking["created_at"])
        ordered = [
            (tier, candidate_id)
            for tier, group in enumerate(ranking["order"])
            for candidate_id in sorted(group)
        ]
        return {
            "type": "ranking",
            "user_id": self.names[ranking["labeler_id"]],
            "ranking_id": ranking["id"],
            "ranked_message_ids": [f"candidate-{candidate_id}" for _tier, candidate_id in ordered],
            "ranking": [tier for tier, _candidate_id in ordered],
            "not_rankable": ranking["none_acceptable"],
            "created_date": _iso(ranking["created_at"]),
        }


def render_trees(batch: SourceBatch) -> list[dict[str, Any]]:
    forest: Forest = batch.extra["forest"]
    records = []
    for root_id in batch.rows:
        turns = forest.prompts[root_id]["turns"]
        leading = 1 if len(turns) > 1 and turns[0]["role"] == "system" else 0
        writer = _TreeWriter(forest, batch.names)
        top, last = writer.chain(turns, first=leading, prompt_id=root_id, parent_id=None)
        writer.turn(root_id, last)
        records.append(
            {
                "message_tree_id": f"prompt-{root_id}",
                "tree_state": None,
                "origin": forest.prompts[root_id]["source"] or None,
                "prompt_id": root_id,
                "system": turns[0]["content"] if leading else None,
                "created_at": _iso(writer.latest),
                "prompt": top,
            }
        )
    return records
