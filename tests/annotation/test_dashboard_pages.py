"""What reviewers and admins read: orders as answers' text (dashboard API and Django admin), and the
per-prompt page with every ranking side by side, on data made by the ranking service."""

from __future__ import annotations

from datetime import timedelta

import pytest

from annotation.models import Comparison, Membership, Project, Ranking
from annotation.models.projects import Role
from annotation.services.rankings import ItemInput, ranking_record
from tests.annotation.export_data import candidate_make, ranked_prompt

AGREE = [[0], [1], [2], [3]]
SWAP = [[1], [0], [2], [3]]


@pytest.fixture
def reviewer(project, django_user_model, password):
    user = django_user_model.objects.create_user("rita", "rita@example.com", password)
    Membership.objects.create(project=project, user=user, role=Role.REVIEWER)
    return user


@pytest.fixture
def ranked(project, labeler, other_labeler):
    """Two prompts ranked by alice and bob (the second with one swap); alice flags answer 3 of the first."""
    first = ranked_prompt(project, 0, [labeler, other_labeler], [AGREE, AGREE], flags={3: ["hallucination"]})
    second = ranked_prompt(project, 1, [labeler, other_labeler], [AGREE, SWAP])
    return [first, second]


# --- Orders read as text ----------------------------------------------------------------------


def test_prompt_agreement_api_carries_the_texts_its_orders_name(ranked, project, reviewer, api_client):
    api_client.force_authenticate(reviewer)
    response = api_client.get(f"/api/projects/{project.pk}/quality/prompts/")
    assert response.status_code == 200
    for row in response.json()["results"]:
        texts = {c["id"]: c["text"] for c in row["candidates"]}
        named = {cid for ranking in row["rankings"] for group in ranking["order"] for cid in group}
        named |= {cid for group in row["consensus_order"] for cid in group}
        assert named <= set(texts)
        assert all(text.startswith("Answer ") for text in texts.values())


def test_prompt_agreement_api_reads_texts_in_one_query_for_the_page(
    project, labeler, other_labeler, reviewer, api_client, django_assert_max_num_queries
):
    for index in range(6):
        ranked_prompt(project, index, [labeler, other_labeler], [AGREE, SWAP])
    api_client.force_authenticate(reviewer)
    # session/auth + project + membership + count + page + candidates + rankings, for any page size
    with django_assert_max_num_queries(8):
        response = api_client.get(f"/api/projects/{project.pk}/quality/prompts/")
    assert len(response.json()["results"]) == 6


def test_admin_ranking_pages_show_answers_not_ids(ranked, admin_user, client, django_assert_max_num_queries):
    client.force_login(admin_user)
    (_prompt, candidates), _ = ranked
    ranking = Ranking.objects.filter(prompt=candidates[0].prompt).order_by("id").first()
    with django_assert_max_num_queries(12):  # the same for 4 rankings as for 400: texts are prefetched
        listing = client.get("/admin/annotation/ranking/")
    page = listing.content.decode()
    assert listing.status_code == 200
    assert "Answer 0.0" in page and "Answer 1.3" in page
    assert f"[[{candidates[0].pk}]" not in page  # the raw id order is gone
    change = client.get(f"/admin/annotation/ranking/{ranking.pk}/change/").content.decode()
    assert change.count("Answer 0.") >= 8  # the order and the items inline, each by text
    assert 'title="Answer 0.0"' in change


def test_admin_comparison_pages_show_answers(ranked, admin_user, client):
    client.force_login(admin_user)
    comparison = Comparison.objects.order_by("id").first()
    listing = client.get("/admin/annotation/comparison/").content.decode()
    assert comparison.better.text in listing and comparison.worse.text in listing
    detail = client.get(f"/admin/annotation/comparison/{comparison.pk}/change/").content.decode()
    assert comparison.better.text in detail and comparison.worse.text in detail


def test_admin_candidate_score_pages_show_answers(ranked, admin_user, client):
    from rewards.models import CandidateScore, RewardModel

    (_prompt, candidates), _ = ranked
    model = RewardModel.objects.create(
        project=candidates[0].prompt.project, status="succeeded", trigger="admin"
    )
    CandidateScore.objects.create(candidate=candidates[0], reward_model=model, score=1.25)
    client.force_login(admin_user)
    assert "Answer 0.0" in client.get("/admin/rewards/candidatescore/").content.decode()
    assert "Answer 0.0" in client.get("/admin/annotation/candidate/").content.decode()


# --- The prompt page --------------------------------------------------------------------------


def _prompt_url(project: Project, prompt) -> str:
    return f"/dashboard/projects/{project.pk}/prompts/{prompt.pk}/"


def test_prompt_page_shows_answers_rankings_and_consensus(
    project, labeler, other_labeler, reviewer, client, django_assert_max_num_queries
):
    from annotation.services.prompts import prompt_create

    prompt = prompt_create(
        project=project,
        turns=[
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "Which size?"},
            {"role": "user", "content": "A small one, please."},
        ],
    )
    texts = ["**Two** is prime.", "Three.", "Four <script>alert(1)</script>", "Nine, I think."]
    candidates = [candidate_make(prompt, text) for text in texts]
    ids = [c.pk for c in candidates]
    for user, order, ratings in (
        (labeler, [[0], [1], [3], [2]], [7, 6, 1, 3]),
        (other_labeler, [[1], [0], [3, 2]], [6, 7, 2, 2]),
    ):
        ranking_record(
            prompt=prompt,
            candidate_ids=ids,
            order=[[ids[n] for n in group] for group in order],
            labeler=user,
            items={
                ids[n]: ItemInput(rating=ratings[n], flags=["hallucination"] if n == 3 else [])
                for n in range(4)
            },
            comment="Three is prime too." if user == other_labeler else "",
        )
    client.force_login(reviewer)
    with django_assert_max_num_queries(10):
        response = client.get(_prompt_url(project, prompt))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Which size?" in page and "A small one, please." in page
    assert "<strong>Two</strong> is prime." in page  # rendered as the rank page renders answers
    assert "<script>alert(1)</script>" not in page  # and sanitised
    assert page.index("alice") < page.index("bob")  # one column per ranking, by username
    review = response.context["review"]
    by_id = {c.id: c for c in review.candidates}
    assert [(cell.rank, cell.rating) for cell in by_id[ids[0]].cells] == [(1, 7), (2, 6)]
    assert [(cell.rank, cell.rating) for cell in by_id[ids[2]].cells] == [(4, 1), (3, 2)]
    assert by_id[ids[3]].cells[0].flags == ["hallucination"]
    assert by_id[ids[0]].mean_rating == 6.5
    # Alice and Bob agree on every pair but 0/1 (and 2/3, tied by bob): the consensus has one 0/1 tie.
    assert [c.id for c in review.candidates][:2] == sorted(ids[:2])
    assert by_id[ids[0]].consensus_rank == by_id[ids[1]].consensus_rank == 1
    assert by_id[ids[3]].consensus_rank == 2 and by_id[ids[2]].consensus_rank == 3
    assert "Three is prime too." in page
    assert 'class="score"' in page  # the reward model's column, filled from its API


def test_prompt_page_is_for_reviewers_and_admins_of_the_project(
    ranked, project, labeler, reviewer, admin_user, client, django_user_model, password
):
    (prompt, _), _ = ranked
    url = _prompt_url(project, prompt)
    client.force_login(labeler)
    assert client.get(url).status_code == 403
    stranger = django_user_model.objects.create_user("sam", "sam@example.com", password)
    client.force_login(stranger)
    assert client.get(url).status_code == 404
    client.force_login(reviewer)
    assert client.get(url).status_code == 200
    other = Project.objects.create(name="Other", k=4, rankings_per_prompt=2)
    assert client.get(f"/dashboard/projects/{other.pk}/prompts/{prompt.pk}/").status_code == 404
    assert client.get(f"/dashboard/projects/{project.pk}/prompts/999999/").status_code == 404
    client.force_login(admin_user)
    assert client.get(url).status_code == 200
    client.logout()
    assert client.get(url).status_code == 302  # to the login page


def test_project_dashboard_links_prompts_to_their_page(ranked, project, reviewer, client):
    client.force_login(reviewer)
    config = client.get(f"/dashboard/projects/{project.pk}/").context["dashboard_config"]
    template = config["urls"]["prompt_template"]
    assert template == f"/dashboard/projects/{project.pk}/prompts/0/"


# --- The reward model's scores for the prompt page (rewards' API, found by URL name) -----------


def test_prompt_reward_scores_rank_candidates_by_the_active_version(
    ranked, project, reviewer, labeler, api_client
):
    from rewards.models import CandidateScore, RewardModel

    (prompt, candidates), _ = ranked
    url = f"/api/projects/{project.pk}/prompts/{prompt.pk}/reward-scores"
    api_client.force_authenticate(reviewer)
    assert api_client.get(url).json() == {"reward_model": None, "scores": []}

    old = RewardModel.objects.create(project=project, version=1, status="succeeded", trigger="admin")
    active = RewardModel.objects.create(
        project=project,
        version=2,
        status="succeeded",
        trigger="admin",
        is_active=True,
        validation_accuracy=0.7,
        metrics={"validation_pairs": 30, "validation_prompts": 5},
    )
    for candidate, score in zip(candidates, [0.5, 2.0, 0.5, -1.0], strict=True):
        CandidateScore.objects.create(candidate=candidate, reward_model=active, score=score)
        CandidateScore.objects.create(candidate=candidate, reward_model=old, score=-score)
    body = api_client.get(url).json()
    assert body["reward_model"]["version"] == 2 and body["reward_model"]["validation_pairs"] == 30
    ranks = {row["candidate_id"]: row["rank"] for row in body["scores"]}
    assert [ranks[c.pk] for c in candidates] == [2, 1, 2, 4]  # equal scores share a rank

    api_client.force_authenticate(labeler)
    assert api_client.get(url).status_code == 403
    api_client.force_authenticate(reviewer)
    other = Project.objects.create(name="Other", k=4, rankings_per_prompt=2)
    Membership.objects.create(project=other, user=reviewer, role=Role.REVIEWER)
    missing = api_client.get(f"/api/projects/{other.pk}/prompts/{prompt.pk}/reward-scores")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "prompt_not_found"


# --- The export form keeps the admin's choices ------------------------------------------------


def test_export_job_returns_to_the_form_with_its_filters(
    ranked, project, labeler, other_labeler, client, django_user_model, password, settings, tmp_path
):
    settings.EXPORT_DIR = tmp_path
    boss = django_user_model.objects.create_user("boss", "boss@example.com", password)
    Membership.objects.create(project=project, user=boss, role=Role.ADMIN)
    client.force_login(boss)
    choices = {
        "export_format": "rankings",
        "file_format": "jsonl.gz",
        "date_from": "2020-01-01",
        "min_agreement": "0.5",
        "labelers": [str(labeler.pk), str(other_labeler.pk)],
        "exclude_flagged": "on",
        "anonymise": "on",
    }
    response = client.post(f"/dashboard/projects/{project.pk}/exports/start", choices)
    assert response.status_code == 302
    page_url = response["Location"]
    assert page_url.startswith(f"/dashboard/projects/{project.pk}/exports/?")
    assert "csrfmiddlewaretoken" not in page_url
    form = client.get(page_url).content.decode()
    assert '<option value="rankings" selected>' in form.replace("  ", " ")
    assert '<option value="jsonl.gz" selected>' in form
    assert 'value="2020-01-01"' in form and 'value="0.5"' in form
    assert 'name="anonymise" checked' in form and "seed" not in page_url
    assert f'<option value="{labeler.pk}" selected>' in form
    assert f'<option value="{other_labeler.pk}" selected>' in form
    assert 'name="exclude_flagged" checked' in form
    assert 'name="consensus_only" >' in form  # not ticked: nothing chose it
    assert f'data-count-url="/api/projects/{project.pk}/exports/count"' in form


def test_refused_export_job_keeps_the_choices_on_the_form(ranked, project, client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        f"/dashboard/projects/{project.pk}/exports/start",
        {"export_format": "sft", "consensus_only": "on", "date_from": "2020-01-01"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "min_agreement and consensus_only apply to rankings" in page
    assert 'name="consensus_only" checked' in page and 'value="2020-01-01"' in page


# --- The dashboard home -----------------------------------------------------------------------


def test_home_gives_each_project_its_figures(
    ranked, project, labeler, other_labeler, reviewer, client, django_user_model
):
    from annotation.services.prompts import prompt_create

    ranked_prompt(project, 2, [labeler], [AGREE])  # one ranking of the two asked for
    prompt_create(project=project, turns=[{"role": "user", "content": "Untouched?"}])
    (first, _), _ = ranked
    from annotation.services.submissions import prompt_done_counts_reconcile
    from tests.annotation.export_data import demonstration_make

    demonstration_make(first, labeler, "Written by hand.")
    prompt_done_counts_reconcile()  # the periodic repair brings the done counts up to date
    old = Ranking.objects.filter(prompt__project=project).order_by("id").first()
    Ranking.objects.filter(pk=old.pk).update(created_at=old.created_at - timedelta(days=3))
    hidden = Project.objects.create(name="Not reviewed by rita", k=4, rankings_per_prompt=1)

    client.force_login(reviewer)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    [row] = response.context["overviews"]
    assert row["project"] == project
    assert (row["prompts"], row["rank_done"], row["rank_started"]) == (4, 2, 1)
    assert (row["demonstrate_done"], row["demonstrate_started"]) == (1, 0)
    assert (row["rankings_today"], row["rankings_week"]) == (4, 5)
    assert row["active_labelers"] == 2
    assert row["agreement"] == pytest.approx(11 / 12)  # 6/6 and 5/6; the prompt ranked once adds none
    page = response.content.decode()
    assert f'href="/dashboard/projects/{project.pk}/"' in page
    assert f'href="/dashboard/projects/{project.pk}/exports/"' in page
    assert "92%" in page and hidden.name not in page


def test_home_reads_a_fixed_number_of_queries_however_many_projects(
    admin_user, labeler, other_labeler, client, django_assert_num_queries
):
    def make(index: int) -> None:
        project = Project.objects.create(name=f"Project {index}", k=4, rankings_per_prompt=2)
        ranked_prompt(project, index, [labeler, other_labeler], [AGREE, SWAP])

    make(0)
    client.force_login(admin_user)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one_project:
        client.get("/dashboard/")
    for index in range(1, 5):
        make(index)
    with django_assert_num_queries(len(one_project.captured_queries)):
        response = client.get("/dashboard/")
    assert len(response.context["overviews"]) == 5


def test_active_reward_models_lists_only_what_the_user_reviews(
    ranked, project, reviewer, labeler, api_client
):
    from rewards.models import RewardModel

    RewardModel.objects.create(project=project, version=1, status="succeeded", trigger="admin")
    RewardModel.objects.create(
        project=project,
        version=2,
        status="succeeded",
        trigger="admin",
        is_active=True,
        validation_accuracy=0.71,
        metrics={"validation_pairs": 40, "validation_prompts": 7},
    )
    elsewhere = Project.objects.create(name="Elsewhere", k=4, rankings_per_prompt=2)
    RewardModel.objects.create(
        project=elsewhere, version=1, status="succeeded", trigger="admin", is_active=True
    )
    api_client.force_authenticate(reviewer)
    [model] = api_client.get("/api/reward-models/active/").json()["results"]
    assert (model["project"], model["version"], model["validation_accuracy"]) == (project.pk, 2, 0.71)
    assert (model["validation_pairs"], model["validation_prompts"]) == (40, 7)
    api_client.force_authenticate(labeler)  # labelers review nothing
    assert api_client.get("/api/reward-models/active/").json()["results"] == []


def test_admin_validation_accuracy_carries_its_sample(ranked, project, admin_user, client):
    from rewards.models import RewardModel

    RewardModel.objects.create(
        project=project,
        version=1,
        status="succeeded",
        trigger="admin",
        validation_accuracy=0.7,
        metrics={"validation_pairs": 30, "validation_prompts": 5},
    )
    client.force_login(admin_user)
    assert "70.0% of 30 pairs from 5 prompts" in client.get("/admin/rewards/rewardmodel/").content.decode()


def test_admin_assignment_shows_the_answers_in_the_order_shown(project, labeler, admin_user, client):
    from annotation.services.assignments import assignment_lease
    from annotation.services.prompts import prompt_create

    prompt = prompt_create(project=project, turns=[{"role": "user", "content": "Pick one?"}])
    for n in range(project.k):
        candidate_make(prompt, f"Shown answer {n}")
    assignment, _ = assignment_lease(labeler=labeler, kind="rank", project_id=project.pk)
    assert assignment is not None and assignment.shown_order
    client.force_login(admin_user)
    page = client.get(f"/admin/annotation/assignment/{assignment.pk}/change/").content.decode()
    positions = [page.index(f"Shown answer {n}") for n in range(project.k)]
    texts = dict(prompt.candidates.values_list("pk", "text"))
    shown = [texts[candidate_id] for candidate_id in assignment.shown_order]
    assert [page.index(text) for text in shown] == sorted(positions)  # in the order the labeler saw


def test_prompt_page_of_an_unranked_prompt(project, reviewer, client):
    from annotation.services.prompts import prompt_create

    prompt = prompt_create(project=project, turns=[{"role": "user", "content": "Nobody ranked me?"}])
    candidate_make(prompt, "A lonely answer.")
    client.force_login(reviewer)
    response = client.get(_prompt_url(project, prompt))
    assert response.status_code == 200
    assert "A lonely answer." in response.content.decode()
    assert response.context["review"].candidates[0].consensus_rank is None
