"""The dashboard's conversation pages on a tree made through the converse services
(tests/annotation/conversation_data.py): the list of continued prompts, and one tree with its turns,
branches, who ranked each reply and how, edits, own replies and "none acceptable"."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Membership, Project, Prompt
from annotation.models.projects import Role
from annotation.selectors import conversations as conversation_selectors
from annotation.services.prompts import prompt_create
from annotation.services.rankings import ranking_record
from tests.annotation.conversation_data import EDITED, OWN_REPLY, SANDWICH, conversation_world
from tests.annotation.export_data import candidate_make


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


@pytest.fixture
def reviewer(project, django_user_model, password):
    user = django_user_model.objects.create_user("rita", "rita@example.com", password)
    Membership.objects.create(project=project, user=user, role=Role.REVIEWER)
    return user


def tree_url(project, prompt) -> str:
    return f"/dashboard/projects/{project.pk}/conversations/{prompt.pk}/"


def test_project_page_links_to_the_conversations(world, reviewer, client):
    client.force_login(reviewer)
    page = client.get(f"/dashboard/projects/{world.project.pk}/").content.decode()
    assert f'href="/dashboard/projects/{world.project.pk}/conversations/"' in page
    listing = client.get(f"/dashboard/projects/{world.project.pk}/conversations/")
    assert listing.status_code == 200
    rows = list(listing.context["page"].object_list)
    # Only the root someone continued; the plain prompt was never continued.
    assert [(root.pk, root.branches) for root in rows] == [(world.root.pk, 2)]
    assert tree_url(world.project, world.root) in listing.content.decode()


def test_conversation_list_is_newest_first_and_paginated(world, reviewer, client, monkeypatch):
    monkeypatch.setattr(conversation_selectors, "ROOTS_PER_PAGE", 2)
    later = []
    for index in range(3):  # three more roots, each continued once, after the tree's
        root = prompt_create(project=world.project, turns=[{"role": "user", "content": f"Later {index}?"}])
        reply = candidate_make(root, f"Reply {index}.")
        Prompt.objects.create(
            project=world.project,
            turns=[
                *root.turns,
                {"role": "assistant", "content": reply.text},
                {"role": "user", "content": "More?"},
            ],
            content_hash=f"later-{index}",
            parent=root,
            parent_candidate=reply,
            converse_depth=1,
        )
        later.append(root)
    client.force_login(reviewer)
    url = f"/dashboard/projects/{world.project.pk}/conversations/"
    first = client.get(url).context["page"]
    second = client.get(url, {"page": 2}).context["page"]
    assert [r.pk for r in first.object_list] == [later[2].pk, later[1].pk]
    assert [r.pk for r in second.object_list] == [later[0].pk, world.root.pk]
    assert 'rel="next"' in client.get(url).content.decode()


def test_tree_page_shows_turns_branches_rankers_edits_own_replies_and_none_acceptable(
    world, reviewer, client
):
    client.force_login(reviewer)
    p1, p2, p3 = (world.turns[name] for name in ("P1", "P2", "P3"))
    response = client.get(tree_url(world.project, p2))  # a deep turn opens its whole tree
    assert response.status_code == 200
    tree = response.context["tree"]
    assert tree.root.prompt_id == world.root.pk and response.context["focus"] == p2.pk
    assert (tree.turns, tree.rankings) == (4, 6)
    assert tree.labelers == ["alice", "bob", "carol"]
    root = tree.root
    assert (
        root.context == [{"role": "system", "content": "Be brief."}]
        and root.user_text == "Plan a picnic for four."
    )
    assert [(r.labeler, r.none_acceptable) for r in root.rankings] == [
        ("alice", False),
        ("bob", False),
        ("carol", False),
    ]
    by_text = {reply.text: reply for reply in root.replies}
    edit = by_text[EDITED]
    assert edit.is_edit and edit.author == "alice" and edit.edited_from == world.id(SANDWICH)
    assert [(v.labeler, v.rank) for v in edit.verdicts] == [("alice", 1), ("carol", 2)]
    assert [(v.labeler, v.rank, v.rating) for v in by_text[SANDWICH].verdicts] == [
        ("alice", 2, 6),
        ("bob", 2, None),
        ("carol", 1, None),
    ]
    assert by_text["Nothing."].verdicts[0].flags == ["other"]
    consensus = [reply.consensus_rank for reply in root.replies]
    assert consensus == sorted(consensus) and consensus[0] == 1
    # Branches: alice continued with her edit, bob with tacos.
    (dessert,) = edit.continuations
    (where,) = by_text["Tacos."].continuations
    assert (dessert.prompt_id, dessert.author, dessert.user_text) == (p1.pk, "alice", "And for dessert?")
    assert (where.prompt_id, where.author) == (p3.pk, "bob")
    assert dessert.none_acceptable == 1 and dessert.rankings[0].none_acceptable
    own = dessert.replies[-1]
    assert own.text == OWN_REPLY and own.is_own_reply and own.author == "alice" and own.consensus_rank is None
    assert [turn.prompt_id for turn in own.continuations] == [p2.pk]
    assert [r.text for r in own.continuations[0].replies] == ["Lemonade.", "Water."]
    assert [d["labeler"] for d in root.demonstrations] == ["bob"]
    page = response.content.decode()
    assert "edit by alice" in page and "own reply by alice" in page and "1 of 1 found none acceptable" in page
    assert f'class="tree-turn focus" id="turn-{p2.pk}"' in page
    # The next turn is drawn inside the reply it continued.
    edit_item = page.index(f'id="reply-{edit.id}"')
    assert edit_item < page.index(f'id="turn-{p1.pk}"') < page.index(f'id="turn-{p2.pk}"')
    assert page.index(f'id="turn-{p3.pk}"') > page.index(f'id="reply-{world.id("Tacos.")}"')


def test_tree_page_reads_in_the_same_queries_however_wide_the_tree(world, reviewer, client, carol):
    client.force_login(reviewer)
    url = tree_url(world.project, world.root)
    client.get(url)  # warm the session and the template cache
    with CaptureQueriesContext(connection) as before:
        assert client.get(url).status_code == 200
    # A third branch from the root, with replies ranked: more rows, the same queries.
    pizza = world.texts["Pizza."]
    branch = Prompt.objects.create(
        project=world.project,
        turns=[
            *world.root.turns,
            {"role": "assistant", "content": "Pizza."},
            {"role": "user", "content": "Which?"},
        ],
        content_hash="branch",
        parent=world.root,
        parent_candidate=pizza,
        converse_depth=1,
    )
    ids = [candidate_make(branch, text).pk for text in ("Margherita.", "Funghi.", "Diavola.")]
    ranking_record(prompt=branch, candidate_ids=ids, order=[[ids[2]], [ids[0], ids[1]]], labeler=carol)
    with CaptureQueriesContext(connection) as after:
        response = client.get(url)
    assert "Margherita." in response.content.decode()
    # session, user, project, role; the prompt; four levels of prompts; candidates, rankings, items,
    # demonstrations, authors; usernames; the savepoints of the test client
    assert len(after.captured_queries) == len(before.captured_queries) <= 16, [
        query["sql"] for query in after.captured_queries
    ]


def test_tree_page_marks_rankings_that_do_not_count(world, reviewer, client, carol):
    from annotation.models import Ranking
    from annotation.services.quality import ranking_exclude

    ranking_exclude(
        ranking_id=Ranking.objects.get(prompt=world.root, labeler=carol).pk, actor=None, reason="triage"
    )
    client.force_login(reviewer)
    response = client.get(tree_url(world.project, world.root))
    root = response.context["tree"].root
    assert [(r.labeler, r.counts) for r in root.rankings] == [
        ("alice", True),
        ("bob", True),
        ("carol", False),
    ]
    sandwich = next(reply for reply in root.replies if reply.text == SANDWICH)
    assert [(v.labeler, v.counts) for v in sandwich.verdicts] == [
        ("alice", True),
        ("bob", True),
        ("carol", False),
    ]
    # Without carol, the edit leads (alice put it first; nobody else placed it).
    assert root.replies[0].text == EDITED
    assert "(excluded)" in response.content.decode()


def test_tree_page_is_for_reviewers_and_admins_of_the_project(world, labeler, reviewer, client):
    url = tree_url(world.project, world.root)
    client.force_login(labeler)
    assert client.get(url).status_code == 403
    assert client.get(f"/dashboard/projects/{world.project.pk}/conversations/").status_code == 403
    client.force_login(reviewer)
    other = Project.objects.create(name="Other", k=4, rankings_per_prompt=2)
    assert client.get(f"/dashboard/projects/{other.pk}/conversations/{world.root.pk}/").status_code == 404
    Membership.objects.create(project=other, user=reviewer, role=Role.REVIEWER)
    assert client.get(f"/dashboard/projects/{other.pk}/conversations/{world.root.pk}/").status_code == 404
    assert client.get(f"/dashboard/projects/{world.project.pk}/conversations/999999/").status_code == 404


def test_prompt_page_links_a_turn_to_its_tree(world, reviewer, client):
    client.force_login(reviewer)
    turn = client.get(
        f"/dashboard/projects/{world.project.pk}/prompts/{world.turns['P1'].pk}/"
    ).content.decode()
    assert tree_url(world.project, world.turns["P1"]) in turn
    root = client.get(f"/dashboard/projects/{world.project.pk}/prompts/{world.root.pk}/").content.decode()
    assert tree_url(world.project, world.root) in root
    plain = client.get(f"/dashboard/projects/{world.project.pk}/prompts/{world.plain.pk}/").content.decode()
    assert "conversation-tree-link" not in plain


def test_export_form_offers_the_conversation_formats_and_the_edit_choice(
    project, client, django_user_model, password
):
    admin = django_user_model.objects.create_user("dora", "dora@example.com", password)
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    client.force_login(admin)
    page = client.get(f"/dashboard/projects/{project.pk}/exports/?edit_pairs=without_edits").content.decode()
    assert 'value="conversation_pairs"' in page and 'value="oasst_trees"' in page
    assert '<option value="without_edits" selected>' in page
