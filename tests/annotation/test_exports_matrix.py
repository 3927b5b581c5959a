"""The export matrix: explicit and implicit preferences, KTO, prompt-only rows, pair and tie
policies, the margin column, consensus rows and the stable train/test split, row by row, with data
made by the real ranking service."""

from __future__ import annotations

import io
import json

import pytest

from annotation.services.exports import export_request_validate, export_stream
from tests.annotation.export_data import ranked_prompt

# Candidates 0-3 of each prompt are "Answer i.0" ... "Answer i.3"; export_data rates candidate n 7-n.
TIERED = [[0], [1, 2], [3]]
AGREE = [[0], [1], [2], [3]]
SWAP = [[1], [0], [2], [3]]


def rows(project, export_format: str, filters: dict | None = None, file_format: str = "jsonl") -> list[dict]:
    request = export_request_validate(
        project=project, export_format=export_format, file_format=file_format, filters=filters or {}
    )
    return [json.loads(line) for line in b"".join(export_stream(request=request)).splitlines()]


@pytest.fixture
def tiered(project, labeler):
    """One prompt ranked once with a tie in the middle: 0 > {1, 2} > 3."""
    prompt, candidates = ranked_prompt(project, 0, [labeler], [TIERED])
    return project, prompt, [c.pk for c in candidates]


@pytest.fixture
def two_labelers(project, labeler, other_labeler):
    """Two prompts ranked by two labelers who swap the top two answers of prompt 0."""
    p0, c0 = ranked_prompt(project, 0, [labeler, other_labeler], [AGREE, SWAP])
    p1, c1 = ranked_prompt(project, 1, [labeler, other_labeler], [AGREE, AGREE])
    return project, (p0, [c.pk for c in c0]), (p1, [c.pk for c in c1])


def pairs_of(records) -> list[tuple[int, int]]:
    return [(r["chosen_id"], r["rejected_id"]) for r in records]


def test_explicit_and_implicit_prompts_standard_and_conversational(tiered):
    project, prompt, ids = tiered
    explicit = rows(project, "pairs")
    assert explicit[0]["prompt"] == "Question 0?" and explicit[0]["chosen"] == "Answer 0.0"
    implicit = rows(project, "pairs_implicit")
    assert "prompt" not in implicit[0]
    assert implicit[0]["chosen"] == "Question 0?\n\nAnswer 0.0"
    assert implicit[0]["rejected"] == "Question 0?\n\nAnswer 0.1"
    conversational = rows(project, "pairs_implicit_conversational")
    assert conversational[0]["chosen"] == [
        {"role": "user", "content": "Question 0?"},
        {"role": "assistant", "content": "Answer 0.0"},
    ]
    assert pairs_of(implicit) == pairs_of(explicit) == pairs_of(conversational)
    # 0 > {1, 2} > 3 gives 5 untied pairs, stored order.
    assert pairs_of(explicit) == [
        (ids[0], ids[1]),
        (ids[0], ids[2]),
        (ids[0], ids[3]),
        (ids[1], ids[3]),
        (ids[2], ids[3]),
    ]


def test_pair_policies_ties_and_margin(tiered):
    project, _prompt, ids = tiered
    adjacent = rows(project, "pairs", {"pair_policy": "adjacent"})
    assert pairs_of(adjacent) == [(ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[3]), (ids[2], ids[3])]
    best = rows(project, "pairs", {"pair_policy": "best_vs_rest"})
    assert pairs_of(best) == [(ids[0], ids[1]), (ids[0], ids[2]), (ids[0], ids[3])]
    ties = rows(project, "pairs", {"tie_policy": "keep"})
    assert pairs_of(ties) == pairs_of(rows(project, "pairs")) + [(ids[1], ids[2])]
    assert [r["tie"] for r in ties] == [False] * 5 + [True]
    # Ratings 7, 6, 5, 4: the rating difference where the ratings agree with the order.
    margins = rows(project, "pairs", {"margin": True})
    assert [r["margin"] for r in margins] == [1.0, 2.0, 3.0, 2.0, 1.0]
    assert "margin" not in rows(project, "pairs")[0] and "tie" not in margins[0]


def test_margin_falls_back_to_rank_distance(project, labeler):
    """Unrated answers (an import, say) or ratings that contradict the order: tie groups apart."""
    _prompt, candidates = ranked_prompt(project, 0, [labeler], [[[3], [2], [1], [0]]])
    ids = [c.pk for c in candidates]
    margins = rows(project, "pairs", {"margin": True})
    assert pairs_of(margins)[:3] == [(ids[3], ids[2]), (ids[3], ids[1]), (ids[3], ids[0])]
    assert [r["margin"] for r in margins] == [1.0, 2.0, 3.0, 1.0, 2.0, 1.0]


def test_consensus_rows_per_prompt(two_labelers):
    project, (p0, ids0), (p1, ids1) = two_labelers
    per_labeler = rows(project, "pairs", {"pair_policy": "best_vs_rest"})
    assert len(per_labeler) == 4 * 3
    consensus = rows(project, "pairs", {"pair_policy": "best_vs_rest", "consensus_only": True})
    assert {r["labeler"] for r in consensus} == {"consensus"}
    assert {r["ranking_id"] for r in consensus} == {None}
    # Prompt 0: 0 and 1 split one vote each, so the consensus ties them at the top.
    assert pairs_of(r for r in consensus if r["prompt_id"] == p0.pk) == [
        (ids0[0], ids0[2]),
        (ids0[0], ids0[3]),
        (ids0[1], ids0[2]),
        (ids0[1], ids0[3]),
    ]
    assert pairs_of(r for r in consensus if r["prompt_id"] == p1.pk) == [
        (ids1[0], ids1[1]),
        (ids1[0], ids1[2]),
        (ids1[0], ids1[3]),
    ]


def test_kto_from_rankings_top_desirable_bottom_undesirable(tiered):
    project, _prompt, ids = tiered
    kto = rows(project, "kto")
    assert [(r["candidate_id"], r["label"]) for r in kto] == [(ids[0], True), (ids[3], False)]
    assert kto[0]["prompt"] == "Question 0?" and kto[0]["completion"] == "Answer 0.0"
    conversational = rows(project, "kto_conversational")
    assert conversational[1]["completion"] == [{"role": "assistant", "content": "Answer 0.3"}]
    assert conversational[1]["label"] is False


def test_kto_from_ratings_thresholds(tiered):
    project, _prompt, ids = tiered
    # Ratings 7, 6, 5, 4: >= 6 desirable, <= 4 undesirable, 5 dropped.
    kto = rows(project, "kto", {"kto_from": "ratings", "desirable_rating": 6, "undesirable_rating": 4})
    assert [(r["candidate_id"], r["label"]) for r in kto] == [(ids[0], True), (ids[1], True), (ids[3], False)]
    default = rows(project, "kto", {"kto_from": "ratings"})
    assert [(r["candidate_id"], r["label"]) for r in default] == [
        (ids[0], True),
        (ids[1], True),
        (ids[2], True),
    ]


def test_kto_consensus_one_set_per_prompt(two_labelers):
    project, (p0, ids0), _ = two_labelers
    kto = rows(project, "kto", {"consensus_only": True})
    assert [(r["candidate_id"], r["label"]) for r in kto if r["prompt_id"] == p0.pk] == [
        (ids0[0], True),
        (ids0[1], True),
        (ids0[3], False),
    ]


def test_prompt_only_rows(project, labeler):
    prompt, _ = ranked_prompt(project, 0, [labeler], [AGREE])
    multi, _ = ranked_prompt(
        project,
        1,
        [],
        [],
        turns=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "More?"},
        ],
    )
    plain = rows(project, "prompt_only")
    assert plain == [
        {"prompt": "Question 0?", "prompt_id": prompt.pk},
        {"prompt": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: More?\n\nAssistant:", "prompt_id": multi.pk},
    ]
    conversational = rows(project, "prompt_only_conversational")
    assert conversational[1]["prompt"] == multi.turns


@pytest.mark.parametrize("export_format", ["pairs_implicit", "pairs_implicit_conversational"])
def test_fast_jsonl_equals_the_records_parquet_holds(project, labeler, other_labeler, export_format):
    """The implicit formats' JSONL is assembled from fragments; Parquet takes the dict renderer."""
    import pyarrow.parquet as pq

    ranked_prompt(project, 0, [labeler, other_labeler], [TIERED, SWAP])
    ranked_prompt(
        project,
        1,
        [labeler],
        [AGREE],
        turns=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": 'Why "quotes"?'}],
    )
    request = export_request_validate(
        project=project, export_format=export_format, file_format="parquet", filters={}
    )
    table = pq.read_table(io.BytesIO(b"".join(export_stream(request=request))))
    assert rows(project, export_format) == table.to_pylist()
