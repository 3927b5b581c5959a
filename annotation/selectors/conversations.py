"""Conversations as trees: the prompts that continue one another (Prompt.parent), read whole.

A conversation tree is a root prompt (one with no parent: a prompt of the pool, or a labeler's own
opening) and every prompt that continues it. Each prompt is one turn: its last user turn, the replies
to it (Candidates: model samples, labelers' edits, own replies), the rankings of those replies, and
the prompts that continue the conversation with one of them (`parent_candidate`).

`conversation_forest_load` reads many trees at once in a fixed number of queries (one per level of
depth, which the project's converse_max_turns bounds, plus five), whatever their width: the dashboard
page of one tree and the tree export (annotation/exports/trees.py) both build on it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.paginator import Page, Paginator
from django.db.models import Count, Max

from annotation.models import Assignment, Candidate, Demonstration, Project, Prompt, Ranking, RankingItem
from annotation.models.assignments import TaskKind
from annotation.models.prompts import CandidateSource
from annotation.models.quality import COUNTING_STATES
from annotation.ranking_math import consensus_from_orders
from config.errors import NotFound

ROOTS_PER_PAGE = 25

_PROMPT_FIELDS = (
    "id",
    "parent_id",
    "parent_candidate_id",
    "turns",
    "converse_depth",
    "source",
    "opened_by_id",
    "created_at",
)
_CANDIDATE_FIELDS = (
    "id",
    "prompt_id",
    "text",
    "source",
    "backend",
    "model_name",
    "seed",
    "finish_reason",
    "edited_from_id",
    "edited_by_id",
    "demonstration_id",
    "demonstration__labeler_id",
    "created_at",
)
_RANKING_FIELDS = (
    "id",
    "prompt_id",
    "labeler_id",
    "source",
    "order",
    "none_acceptable",
    "comment",
    "quality_state",
    "created_at",
)


@dataclass
class Forest:
    """Raw rows of whole conversation trees, grouped for walking them (value dicts, no model instances).

        `children[p]` are the prompts that continue prompt p (by id); `authors[p]` is the labeler who wrote
        the user turn that prompt p adds (the first to continue with it; for a root, the labeler who opened
    it with their own words, else None); `items` maps
        (ranking id, candidate id) to (tie group from 0, rating, flags).
    """

    roots: list[int]
    prompts: dict[int, dict[str, Any]]
    children: dict[int, list[int]]
    candidates: dict[int, list[dict[str, Any]]]
    rankings: dict[int, list[dict[str, Any]]]
    items: dict[tuple[int, int], tuple[int, int | None, list[str]]]
    demonstrations: dict[int, list[dict[str, Any]]]  # those that are no candidate
    authors: dict[int, int | None]

    def user_ids(self) -> set[int]:
        ids: set[int | None] = set(self.authors.values())
        for rows in self.candidates.values():
            ids.update(row["edited_by_id"] for row in rows)
            ids.update(row["demonstration__labeler_id"] for row in rows)
        for rows in self.rankings.values():
            ids.update(row["labeler_id"] for row in rows)
        for rows in self.demonstrations.values():
            ids.update(row["labeler_id"] for row in rows)
        return {user_id for user_id in ids if user_id is not None}


def conversation_forest_load(*, root_ids: Collection[int], counting_only: bool = False) -> Forest:
    """The trees under `root_ids` (prompt ids; absent ones are left out), read level by level.

    `counting_only` leaves out the rankings and demonstrations that do not count (excluded by triage,
    rejected in review), as exports do; the replies and turns stay, since conversations went on."""
    prompts: dict[int, dict[str, Any]] = {}
    children: dict[int, list[int]] = defaultdict(list)
    level = list(Prompt.objects.filter(pk__in=set(root_ids)).order_by("id").values(*_PROMPT_FIELDS))
    roots = [row["id"] for row in level]
    while level:
        for row in level:
            prompts[row["id"]] = row
            if row["parent_id"] is not None:
                children[row["parent_id"]].append(row["id"])
        level = list(
            Prompt.objects.filter(parent_id__in=[row["id"] for row in level])
            .exclude(pk__in=prompts.keys())  # a cycle cannot be made through the services; never loop
            .order_by("id")
            .values(*_PROMPT_FIELDS)
        )
    ids = list(prompts)
    candidates: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in Candidate.objects.filter(prompt_id__in=ids).order_by("id").values(*_CANDIDATE_FIELDS):
        candidates[row["prompt_id"]].append(row)
    counting = {"quality_state__in": COUNTING_STATES} if counting_only else {}
    rankings: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in (
        Ranking.objects.filter(prompt_id__in=ids, **counting)
        .order_by("created_at", "id")
        .values(*_RANKING_FIELDS)
    ):
        rankings[row["prompt_id"]].append(row)
    items = {
        (ranking_id, candidate_id): (rank, rating, flags)
        for ranking_id, candidate_id, rank, rating, flags in RankingItem.objects.filter(
            ranking__prompt_id__in=ids, **{f"ranking__{key}": value for key, value in counting.items()}
        ).values_list("ranking_id", "candidate_id", "rank", "rating", "flags")
    }
    demonstrations: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in (
        Demonstration.objects.filter(prompt_id__in=ids, candidate__isnull=True, **counting)
        .order_by("id")
        .values("id", "prompt_id", "labeler_id", "text", "created_at")
    ):
        demonstrations[row["prompt_id"]].append(dict(row))
    # Who wrote a continuing prompt's user turn: the labeler whose turn led to it (the first, when
    # two labelers wrote the very same words and so reached the same prompt).
    authors: dict[int, int | None] = {prompt_id: row["opened_by_id"] for prompt_id, row in prompts.items()}
    for prompt_id, labeler_id in (
        Assignment.objects.filter(prompt_id__in=ids, kind=TaskKind.CONVERSE, previous__isnull=False)
        .order_by("-id")
        .values_list("prompt_id", "labeler_id")
    ):
        authors[prompt_id] = labeler_id
    return Forest(
        roots=roots,
        prompts=prompts,
        children=dict(children),
        candidates=dict(candidates),
        rankings=dict(rankings),
        items=items,
        demonstrations=dict(demonstrations),
        authors=authors,
    )


def consensus_ranks(rankings: list[dict[str, Any]]) -> dict[int, int]:
    """Each ranked candidate's tie group (from 0) in the ranked-pairs consensus of those of
    `rankings` that count."""
    orders = [row["order"] for row in rankings if row["quality_state"] in COUNTING_STATES]
    order = consensus_from_orders(orders=orders).order
    return {candidate_id: position for position, group in enumerate(order) for candidate_id in group}


# --- The dashboard's list of conversations --------------------------------------------------------


def conversation_roots_page(*, project: Project, page: int | str | None) -> Page:
    """Roots of `project` that someone has continued, most recently continued first, paginated.

    Each object is a Prompt annotated with `branches` (prompts continuing it directly) and
    `continued_at` (when the latest of them was made).
    """
    roots = (
        Prompt.objects.filter(project=project, parent__isnull=True, children__isnull=False)
        .annotate(branches=Count("children", distinct=True), continued_at=Max("children__created_at"))
        .order_by("-continued_at", "-id")
    )
    return Paginator(roots, ROOTS_PER_PAGE).get_page(page)


# --- One tree as the dashboard shows it -----------------------------------------------------------


@dataclass(frozen=True)
class ReplyVerdict:
    """One ranking's verdict on one reply: its place (tie group from 1), rating and flags."""

    labeler: str | None  # None for imported preference data
    rank: int
    rating: int | None
    flags: list[str]
    counts: bool = True  # False: the ranking was excluded or rejected (left out of the consensus)


@dataclass(frozen=True)
class TurnRanking:
    id: int
    labeler: str | None
    none_acceptable: bool
    comment: str
    created_at: datetime
    quality_state: str = "counted"

    @property
    def counts(self) -> bool:
        return self.quality_state in COUNTING_STATES


@dataclass
class TreeReply:
    """One reply of a turn, with who made it, how each ranking placed it, and what continued from it."""

    id: int
    text: str
    source: str  # CandidateSource: model, edit, demonstration (an own reply) or import
    model_name: str
    author: str | None  # the editor of an edit, the writer of an own reply
    edited_from: int | None
    consensus_rank: int | None  # tie group in the turn's consensus, from 1; None if never ranked
    verdicts: list[ReplyVerdict] = field(default_factory=list)
    continuations: list[TreeTurn] = field(default_factory=list)
    html: str = ""  # the text as sanitised HTML, filled by the page that shows it

    @property
    def is_edit(self) -> bool:
        return self.source == CandidateSource.EDIT

    @property
    def is_own_reply(self) -> bool:
        return self.source == CandidateSource.DEMONSTRATION


@dataclass
class TreeTurn:
    """One prompt of the tree: the user turn it adds, the replies to it and their rankings."""

    prompt_id: int
    depth: int  # 0 for the root
    context: list[dict[str, str]]  # turns before `user_text` that no tree node shows (the root's)
    user_text: str
    author: str | None
    created_at: datetime
    rankings: list[TurnRanking]
    replies: list[TreeReply]  # consensus order, then unranked by id
    demonstrations: list[dict[str, Any]]  # demonstrations of this prompt that are no reply
    detached: list[TreeTurn] = field(default_factory=list)  # continuations whose reply is gone

    @property
    def none_acceptable(self) -> int:
        """How many of the turn's rankings that count found no reply acceptable."""
        return sum(ranking.none_acceptable for ranking in self.rankings if ranking.counts)

    @property
    def counting_rankings(self) -> int:
        return sum(ranking.counts for ranking in self.rankings)


@dataclass
class ConversationTree:
    root: TreeTurn
    turns: int  # prompts in the tree
    rankings: int
    labelers: list[str]  # everyone who ranked or wrote in it, by name


def conversation_tree_get(*, project: Project, prompt_id: int) -> ConversationTree:
    """The whole tree that prompt `prompt_id` of `project` belongs to, from its root (fixed queries).

    Raises NotFound when the prompt does not exist or belongs to another project. The caller checks
    the role.
    """
    prompt = Prompt.objects.filter(pk=prompt_id, project=project).values("id", "parent_id").first()
    if prompt is None:
        raise NotFound("no such prompt in this project", code="prompt_not_found")
    root_id = prompt["id"]
    parent_id = prompt["parent_id"]
    while parent_id is not None:  # up to the root: converse_max_turns bounds the steps
        root_id, parent_id = (
            parent_id,
            Prompt.objects.filter(pk=parent_id).values_list("parent_id", flat=True)[0],
        )
    forest = conversation_forest_load(root_ids=[root_id])
    user_model = get_user_model()
    names: dict[int | None, str | None] = {None: None}
    names.update(
        user_model.objects.filter(pk__in=forest.user_ids()).values_list("pk", user_model.USERNAME_FIELD)
    )
    root = _turn(forest, names, root_id, context_from=0)
    ranking_count = sum(len(rows) for rows in forest.rankings.values())
    people = sorted({name for name in names.values() if name is not None})
    return ConversationTree(root=root, turns=len(forest.prompts), rankings=ranking_count, labelers=people)


def _turn(
    forest: Forest, names: dict[int | None, str | None], prompt_id: int, *, context_from: int
) -> TreeTurn:
    row = forest.prompts[prompt_id]
    turns = row["turns"]
    rankings = forest.rankings.get(prompt_id, [])
    ranks = consensus_ranks(rankings)
    continuing: dict[int | None, list[int]] = defaultdict(list)
    for child_id in forest.children.get(prompt_id, []):
        continuing[forest.prompts[child_id]["parent_candidate_id"]].append(child_id)
    replies = []
    for candidate in forest.candidates.get(prompt_id, []):
        verdicts = []
        for ranking in rankings:
            item = forest.items.get((ranking["id"], candidate["id"]))
            if item is not None:
                verdicts.append(
                    ReplyVerdict(
                        labeler=names.get(ranking["labeler_id"]),
                        rank=item[0] + 1,
                        rating=item[1],
                        counts=ranking["quality_state"] in COUNTING_STATES,
                        flags=item[2],
                    )
                )
        author_id = candidate["edited_by_id"] or candidate["demonstration__labeler_id"]
        consensus = ranks.get(candidate["id"])
        replies.append(
            TreeReply(
                id=candidate["id"],
                text=candidate["text"],
                source=candidate["source"],
                model_name=candidate["model_name"],
                author=names.get(author_id),
                edited_from=candidate["edited_from_id"],
                consensus_rank=None if consensus is None else consensus + 1,
                verdicts=verdicts,
                continuations=[
                    _turn(forest, names, child_id, context_from=len(turns) + 1)
                    for child_id in continuing.pop(candidate["id"], [])
                ],
            )
        )
    unranked = len(ranks) + 1
    replies.sort(key=lambda reply: (reply.consensus_rank or unranked, reply.id))
    return TreeTurn(
        prompt_id=prompt_id,
        depth=row["converse_depth"],
        context=turns[context_from:-1],
        user_text=turns[-1]["content"] if turns else "",
        author=names.get(forest.authors.get(prompt_id)),
        created_at=row["created_at"],
        rankings=[
            TurnRanking(
                id=ranking["id"],
                labeler=names.get(ranking["labeler_id"]),
                none_acceptable=ranking["none_acceptable"],
                comment=ranking["comment"],
                created_at=ranking["created_at"],
                quality_state=ranking["quality_state"],
            )
            for ranking in rankings
        ],
        replies=replies,
        demonstrations=[
            {**demonstration, "labeler": names.get(demonstration["labeler_id"])}
            for demonstration in forest.demonstrations.get(prompt_id, [])
        ],
        detached=[
            _turn(forest, names, child_id, context_from=len(turns))
            for child_ids in continuing.values()
            for child_id in child_ids
        ],
    )
