"""The tree export (oasst_trees) on a tree made through the converse services
(tests/annotation/conversation_data.py): Open-Assistant's message-tree shape with turns, branches,
consensus ranks, edits, own replies, labels and ranking events; only work that counts; anonymised;
JSONL only; read in a fixed number of queries."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from annotation.services.exports import export_request_validate
from config.errors import ValidationFailed
from tests.annotation.conversation_data import (
    ALL_PAIRS,
    EDITED,
    OWN_REPLY,
    SANDWICH,
    conversation_world,
    counted,
    export,
)


@pytest.fixture(autouse=True)
def quick_passwords(settings):
    """The fixtures' users need no strong hash; PBKDF2 would cost a CPU-second or so a user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def carol(django_user_model, password):
    return django_user_model.objects.create_user("carol", "carol@example.com", password)


@pytest.fixture
def world(project, labeler, other_labeler, carol):
    return conversation_world(project, labeler, other_labeler, carol)


def walk(node, parent=None):
    """Every node of a tree, depth first, checking that each names its parent."""
    assert node["parent_id"] == (parent["message_id"] if parent else None)
    yield node
    for reply in node["replies"]:
        yield from walk(reply, node)


def test_trees_nest_turns_replies_edits_and_own_replies(world):
    trees = export(world.project, "oasst_trees")
    assert len(trees) == 2 == counted(world.project, "oasst_trees", {})
    tree, plain = trees
    assert tree["message_tree_id"] == f"prompt-{world.root.pk}" and tree["system"] == "Be brief."
    nodes = {node["message_id"]: node for node in walk(tree["prompt"])}
    assert len(nodes) == len(list(walk(tree["prompt"])))  # ids are unique
    root = tree["prompt"]
    assert (root["role"], root["text"], root["message_id"]) == (
        "prompter",
        "Plan a picnic for four.",
        f"prompt-{world.root.pk}",
    )
    for node in nodes.values():  # roles alternate down every branch
        assert {reply["role"] for reply in node["replies"]} <= {
            "assistant" if node["role"] == "prompter" else "prompter"
        }
    # The root's replies: every candidate, best first by consensus, then the demonstration (no rank).
    replies = root["replies"]
    assert {r["text"] for r in replies} == {
        EDITED,
        SANDWICH,
        "Pizza.",
        "Nothing.",
        "Tacos.",
        "Bring a blanket, sandwiches and water.",
    }
    ranks = [r["rank"] for r in replies if r["rank"] is not None]
    assert ranks == sorted(ranks) and len(ranks) == 5 and ranks[0] == 0
    assert (
        replies[-1]["source"] == "demonstration"
        and replies[-1]["user_id"] == "bob"
        and replies[-1]["rank"] is None
    )
    assert root["labels"] == {"none_acceptable": {"value": 0.0, "count": 3}}
    assert [event["user_id"] for event in root["events"]["ranking"]] == ["alice", "bob", "carol"]
    alice_event = root["events"]["ranking"][0]
    assert alice_event["ranked_message_ids"][:2] == [
        f"candidate-{world.id(EDITED)}",
        f"candidate-{world.id(SANDWICH)}",
    ]
    assert alice_event["ranking"] == [0, 1, 2, 3] and alice_event["not_rankable"] is False
    # The edit: written by alice, not synthetic, naming the reply it rewrote; the next turn hangs under it.
    edit = nodes[f"candidate-{world.id(EDITED)}"]
    assert (edit["source"], edit["synthetic"], edit["user_id"]) == ("edit", False, "alice")
    assert edit["edited_from"] == f"candidate-{world.id(SANDWICH)}"
    sandwich = nodes[f"candidate-{world.id(SANDWICH)}"]
    assert sandwich["synthetic"] is True and sandwich["model_name"] == "gemma-test"
    assert sandwich["labels"]["quality"] == {"value": 0.8333, "count": 1}  # alice's 6 of 7: 5/6
    assert nodes[f"candidate-{world.id('Nothing.')}"]["labels"]["other"] == {"value": 0.5, "count": 2}
    p1, p2, p3 = (world.turns[name] for name in ("P1", "P2", "P3"))
    (dessert,) = edit["replies"]
    assert (dessert["message_id"], dessert["text"], dessert["user_id"]) == (
        f"prompt-{p1.pk}",
        "And for dessert?",
        "alice",
    )
    # "None acceptable" on the turn; alice's own reply, unranked, continues the conversation.
    assert dessert["labels"] == {"none_acceptable": {"value": 1.0, "count": 1}}
    assert dessert["events"]["ranking"][0]["not_rankable"] is True
    assert [(r["text"], r["rank"]) for r in dessert["replies"]] == [
        ("Ice cream.", 0),
        ("Cake.", 1),
        ("Cookies.", 1),
        (OWN_REPLY, None),
    ]
    own = dessert["replies"][-1]
    assert (own["source"], own["synthetic"], own["user_id"]) == ("demonstration", False, "alice")
    assert [n["message_id"] for n in own["replies"]] == [f"prompt-{p2.pk}"]
    assert [r["text"] for r in own["replies"][0]["replies"]] == ["Lemonade.", "Water."]
    tacos = nodes[f"candidate-{world.id('Tacos.')}"]
    assert [(n["message_id"], n["user_id"]) for n in tacos["replies"]] == [(f"prompt-{p3.pk}", "bob")]
    # The never-continued prompt is a tree of one turn.
    assert plain["prompt_id"] == world.plain.pk and plain["system"] is None
    assert [len(r["replies"]) for r in plain["prompt"]["replies"]] == [0, 0, 0, 0]
    # The tree's time is its newest row's (the card's cut-off reads it).
    latest = max(
        [node["created_date"] for node in nodes.values()]
        + [event["created_date"] for node in nodes.values() for event in node["events"].get("ranking", [])]
    )
    assert tree["created_at"] == latest and datetime.fromisoformat(latest).tzinfo is not None


def test_trees_leave_out_rankings_that_do_not_count(world, carol):
    """A ranking excluded by triage leaves the tree's events, labels and consensus, as it leaves the pairs."""
    from annotation.models import Ranking
    from annotation.services.quality import ranking_exclude

    excluded = Ranking.objects.get(prompt=world.root, labeler=carol)
    ranking_exclude(ranking_id=excluded.pk, actor=None, reason="triage")
    (tree, _plain) = export(world.project, "oasst_trees")
    root = tree["prompt"]
    assert [event["user_id"] for event in root["events"]["ranking"]] == ["alice", "bob"]
    assert root["labels"]["none_acceptable"]["count"] == 2
    nothing = next(r for r in root["replies"] if r["text"] == "Nothing.")
    assert nothing["labels"]["other"] == {"value": 1.0, "count": 1}  # alice's flag, of alice's ranking only
    assert len(export(world.project, "conversation_pairs")) == ALL_PAIRS - 9


def test_trees_anonymise_and_refuse_parquet(world):
    anonymous = json.dumps(export(world.project, "oasst_trees", {"anonymise": True}))
    assert '"alice"' not in anonymous and '"bob"' not in anonymous and '"labeler-' in anonymous
    for file_format in ("parquet", "hf_dataset"):
        with pytest.raises(ValidationFailed) as error:
            export_request_validate(
                project=world.project, export_format="oasst_trees", file_format=file_format, filters={}
            )
        assert error.value.code == "invalid_file_format"
    assert export(world.project, "oasst_trees", file_format="jsonl.gz") == export(
        world.project, "oasst_trees"
    )


def test_trees_are_read_in_a_fixed_number_of_queries(world, django_assert_max_num_queries):
    # roots; four levels of prompts (the last empty); candidates, rankings, items, demonstrations,
    # authors; labeler names. Wider or more trees add rows, not queries.
    with django_assert_max_num_queries(12):
        export(world.project, "oasst_trees")
