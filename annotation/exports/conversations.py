"""Conversational preference pairs per turn: TRL's conversational preference format, one row per
comparison, with where the turn sits in its conversation.

A conversation is a tree of prompts (Prompt.parent) and each turn's ranking an ordinary ranking of the
prompt that holds the conversation so far, so the rows are the project's comparisons (or the pairs
the pair options derive, see derived.py), every prompt's, single-turn ones included:

    {"prompt": [the whole history as {role, content} turns, ending with the user's],
     "chosen": [{"role": "assistant", "content": ...}], "rejected": [{"role": "assistant", ...}],
     ...the pair columns (ids, labeler, time; margin and tie when asked)...,
     "root_prompt_id", "parent_prompt_id", "turn", "none_acceptable",
     "chosen_source", "rejected_source", "chosen_edited_from", "rejected_edited_from", "edit_of_rejected"}

`turn` counts the user turns in `prompt` (1 for a single-turn prompt); `none_acceptable` is the
ranking's (None for consensus rows); a `*_source` is the answer's origin (model, edit, demonstration,
import) and `*_edited_from` the answer an edit rewrote; `edit_of_rejected` marks the rows whose chosen
answer is a labeler's edit of the rejected one.

The `edit_pairs` option chooses which rows to keep:
- `all`: every pair; an edit is an answer like any other.
- `without_edits`: pairs that hold an edit are left out (the replies as sampled, and own replies).
- `edited_chosen_rejected`: the chain edited > chosen > rejected. For each ranking that places an
  edit E strictly above the reply O it rewrote: the row E over O, and the rows O over each answer R
  that the ranking places strictly below O. Nothing else (E over R follows from the two and would
  count the edit twice; rankings without such an edit give no row). Per ranking, so not with
  `consensus_only`.

A test split (`test_fraction`) puts whole conversations on one side, by the root prompt, so no turn
of a test conversation has its history in train (annotation/exports/split.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from annotation.exports import derived, sources
from annotation.exports.filters import ExportFilters
from annotation.exports.options import EDIT_PAIRS
from annotation.exports.sources import SourceBatch
from annotation.exports.text import assistant_turn
from annotation.exports.unpaired import pair_meta
from annotation.models import Candidate, Prompt, Ranking
from annotation.models.prompts import CandidateSource
from annotation.ranking_math import rank_map

__all__ = ["EDIT_PAIRS", "conversation_pair_batches", "render_conversation_pairs"]

CARD_DETAILS = """\
One row per comparison of two answers by one ranking (or by the consensus), for every prompt: a turn
of a live conversation is a prompt whose turns are the conversation so far, so `prompt` is the whole
history as `{role, content}` messages ending with the user's turn, and `chosen` / `rejected` are one
assistant message each (TRL's conversational preference format).

Columns beside TRL's: `prompt_id`, `chosen_id`, `rejected_id`, `ranking_id`, `labeler`, `created_at`;
`root_prompt_id` (the prompt the conversation started from) and `parent_prompt_id` (the turn before,
null for a first turn); `turn` (user turns in `prompt`, 1 for a single-turn prompt); `none_acceptable`
(the ranking's labeler found no answer acceptable; null on consensus rows); `chosen_source` and
`rejected_source` (`model`, `edit`: a labeler's rewrite of a reply, `demonstration`: a labeler's own
reply, `import`); `chosen_edited_from` / `rejected_edited_from` (the reply an edit rewrote);
`edit_of_rejected` (the chosen answer is a labeler's edit of the rejected one).

`edit_pairs` chooses the rows: `all` (every pair; an edit is an answer like any other),
`without_edits` (no pair holding an edit), or `edited_chosen_rejected`: for each ranking that puts an
edit E strictly above the reply O it rewrote, the row E over O and the rows O over each answer the
ranking puts strictly below O (edited > chosen > rejected); nothing else, since E over those answers
follows from the two, and rankings without such an edit give no row. With a test split, whole
conversations (by `root_prompt_id`) fall on one side.
"""


@dataclass
class TurnFacts:
    """What a batch of pair rows needs beyond texts: the answers' origins, the prompts' places in
    their trees, and the rankings' none-acceptable marks (and orders, for the edit chain)."""

    source: dict[int, str]  # candidate id -> CandidateSource
    edited_from: dict[int, int | None]
    parent: dict[int, int | None]  # prompt id -> parent prompt id
    root: dict[int, int]  # prompt id -> root prompt id
    none_acceptable: dict[int, bool]  # ranking id -> its mark
    orders: dict[int, list[list[int]]]  # ranking id -> its order (edited_chosen_rejected only)

    def columns(self, row, turns: list[dict[str, str]]) -> dict[str, Any]:
        prompt_id, ranking_id, _labeler, better, worse = row[:5]
        return {
            "root_prompt_id": self.root[prompt_id],
            "parent_prompt_id": self.parent[prompt_id],
            "turn": sum(turn["role"] == "user" for turn in turns),
            "none_acceptable": None if ranking_id is None else self.none_acceptable.get(ranking_id, False),
            "chosen_source": self.source[better],
            "rejected_source": self.source[worse],
            "chosen_edited_from": self.edited_from[better],
            "rejected_edited_from": self.edited_from[worse],
            "edit_of_rejected": self.edited_from[better] == worse,
        }


def _tree_places(prompt_ids: set[int]) -> tuple[dict[int, int | None], dict[int, int]]:
    """(parent, root) of each prompt, reading the ancestors one level per query (the depth of a
    conversation is bounded by its project's converse_max_turns)."""
    parent: dict[int, int | None] = {}
    pending = set(prompt_ids)
    while pending:
        rows = dict(Prompt.objects.filter(pk__in=pending).values_list("pk", "parent_id"))
        parent.update(rows)
        pending = {up for up in rows.values() if up is not None and up not in parent}
    root: dict[int, int] = {}
    for prompt_id in prompt_ids:
        node, up = prompt_id, parent.get(prompt_id)
        while up is not None:
            node, up = up, parent.get(up)
        root[prompt_id] = node
    return {pid: parent.get(pid) for pid in prompt_ids}, root


def turn_facts(batch: SourceBatch, *, with_orders: bool) -> TurnFacts:
    prompt_ids = {row[0] for row in batch.rows}
    ranking_ids = {row[1] for row in batch.rows if row[1] is not None}
    source: dict[int, str] = {}
    edited_from: dict[int, int | None] = {}
    for pk, origin, original in Candidate.objects.filter(prompt_id__in=prompt_ids).values_list(
        "pk", "source", "edited_from_id"
    ):
        source[pk], edited_from[pk] = origin, original
    parent, root = _tree_places(prompt_ids)
    fields = ("pk", "none_acceptable", "order") if with_orders else ("pk", "none_acceptable")
    marks: dict[int, bool] = {}
    orders: dict[int, list[list[int]]] = {}
    for values in Ranking.objects.filter(pk__in=ranking_ids).values_list(*fields):
        marks[values[0]] = values[1]
        if with_orders:
            orders[values[0]] = values[2]
    return TurnFacts(
        source=source, edited_from=edited_from, parent=parent, root=root, none_acceptable=marks, orders=orders
    )


def _chain_rows(rows: list[Any], facts: TurnFacts) -> list[Any]:
    """The rows of the edited > chosen > rejected chain (see the module's docstring)."""
    chains: dict[int, tuple[set[tuple[int, int]], set[int], dict[int, int]]] = {}
    for ranking_id, order in facts.orders.items():
        tiers = rank_map(order)
        edits = {
            (edit, original)
            for edit in tiers
            if (original := facts.edited_from.get(edit)) is not None
            and original in tiers
            and tiers[edit] < tiers[original]
        }
        if edits:
            chains[ranking_id] = (edits, {original for _edit, original in edits}, tiers)
    kept = []
    for row in rows:
        chain = chains.get(row[1])
        if chain is None:
            continue
        edits, originals, tiers = chain
        better, worse = row[3], row[4]
        if (better, worse) in edits or (better in originals and tiers[worse] > tiers[better]):
            kept.append(row)
    return kept


def conversation_pair_batches(*, project_id: int, filters: ExportFilters) -> Iterator[SourceBatch]:
    """The pair rows of `filters` (stored comparisons, or derived under the pair options), each batch
    with its TurnFacts in `extra["conversation"]` and the `edit_pairs` choice applied."""
    inner = (
        derived.derived_batches(project_id=project_id, filters=filters, kind="pairs")
        if filters.derives_pairs
        else sources.pair_batches(project_id=project_id, filters=filters)
    )
    chain = filters.edit_pairs == "edited_chosen_rejected"
    for batch in inner:
        facts = turn_facts(batch, with_orders=chain)
        if chain:
            batch.rows = _chain_rows(batch.rows, facts)
        elif filters.edit_pairs == "without_edits":
            batch.rows = [
                row
                for row in batch.rows
                if facts.source[row[3]] != CandidateSource.EDIT
                and facts.source[row[4]] != CandidateSource.EDIT
            ]
        batch.extra["conversation"] = facts
        yield batch


def conversation_pair_source_count(*, project_id: int, filters: ExportFilters) -> int:
    if filters.derives_pairs:
        return derived.derived_source_count(project_id=project_id, filters=filters)
    return sources.comparison_source_count(project_id=project_id, filters=filters)


def conversation_pair_row_count(*, project_id: int, filters: ExportFilters) -> int:
    """The rows the export writes: the pair formats' count when every pair is kept; otherwise the
    rows walked (which reads the answers' texts: the edit choice needs their origins per batch)."""
    if filters.edit_pairs == "all":
        if filters.derives_pairs:
            return derived.derived_row_count(project_id=project_id, filters=filters, kind="pairs")
        return sources.pair_row_count(project_id=project_id, filters=filters)
    return sum(len(batch.rows) for batch in conversation_pair_batches(project_id=project_id, filters=filters))


def render_conversation_pairs(batch: SourceBatch) -> list[dict[str, Any]]:
    facts: TurnFacts = batch.extra["conversation"]
    texts = batch.candidates
    records = []
    for row in batch.rows:
        turns = batch.prompts[row[0]]
        records.append(
            {
                "prompt": turns,
                "chosen": assistant_turn(texts[row[3]]),
                "rejected": assistant_turn(texts[row[4]]),
                **pair_meta(row, batch),
                **facts.columns(row, turns),
            }
        )
    return records
