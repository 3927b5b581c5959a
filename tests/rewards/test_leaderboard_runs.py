"""The generator leaderboard in the product: outcomes from real rankings of candidates with their
provenance, the background run (its result, progress and cache per data cut-off), the API's
permissions, and the dashboard's panel."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from annotation.models import Candidate, Membership, Prompt
from annotation.models.projects import Role
from annotation.selectors.leaderboard import candidate_generator, leaderboard_ranked_candidates
from annotation.services.candidates import candidate_text_hash
from annotation.services.prompts import prompt_create
from annotation.services.quality import ranking_exclude
from annotation.services.rankings import ranking_record
from config.celery import app as celery_app
from rewards import leaderboard as leaderboard_math
from rewards.leaderboard import Outcome, Result, leaderboard_compute
from rewards.models import CandidateScore, LeaderboardRun, LeaderboardRunStatus, RewardModel
from rewards.services import leaderboard_runs
from rewards.services.leaderboard_compute import leaderboard_outcomes, leaderboard_run_compute
from rewards.services.leaderboard_runs import RUNNING_STALE_AFTER, leaderboard_request

COOL = {
    "temperature": 0.7,
    "top_p": 0.95,
    "max_tokens": 256,
    "stop": ["\nQuestion:"],
    "prompt_format": "plain",
}
HOT = {**COOL, "temperature": 1.3}
COOL_NAME = "embedded:gemma-3-270m (temperature=0.7, top_p=0.95, max_tokens=256)"
HOT_NAME = "embedded:gemma-3-270m (temperature=1.3, top_p=0.95, max_tokens=256)"


def candidate_make(prompt: Prompt, text: str, kind: str) -> Candidate:
    """A candidate as generation, a demonstration or an import would store it."""
    provenance: dict = {"source": kind}
    if kind in ("cool", "hot"):
        provenance = {
            "source": "model",
            "backend": "embedded",
            "model_name": "gemma-3-270m",
            # a live reply's record is the same generator: only temperature, top_p, max_tokens count
            "sampling_params": {**(COOL if kind == "cool" else HOT), "live": text.endswith("!")},
            "seed": len(text),
        }
    return Candidate.objects.create(
        prompt=prompt, text=text, content_hash=candidate_text_hash(text=text), **provenance
    )


# Each prompt gets a demonstration, two cool samples and a hot one; the labelers' orders, by kind.
ORDERS = [
    (["demonstration"], ["cool", "hot"], ["cool2"]),
    (["cool"], ["demonstration"], ["hot"], ["cool2"]),
    (["demonstration", "cool"], ["hot", "cool2"]),
    (["hot"], ["demonstration"], ["cool", "cool2"]),
]


def world_make(project, labelers, *, prompts: int, start: int = 0) -> list:
    """Prompts ranked by each labeler with ORDERS in turn; returns the expected outcomes, ranking
    by ranking in the order the rankings were made (the bootstrap's cluster order)."""
    expected: list[Outcome] = []
    names = {"demonstration": "demonstration", "cool": COOL_NAME, "cool2": COOL_NAME, "hot": HOT_NAME}
    step = 0
    for index in range(start, start + prompts):
        prompt = prompt_create(project=project, turns=[{"role": "user", "content": f"Question {index}?"}])
        made = {
            "demonstration": candidate_make(prompt, f"A careful answer to {index}.", "demonstration"),
            "cool": candidate_make(prompt, f"Cool answer {index}.", "cool"),
            "cool2": candidate_make(prompt, f"Another cool answer {index}!", "cool"),
            "hot": candidate_make(prompt, f"HOT answer {index}", "hot"),
        }
        for labeler in labelers:
            order = ORDERS[step % len(ORDERS)]
            step += 1
            ranking = ranking_record(
                prompt=prompt,
                candidate_ids=[c.pk for c in made.values()],
                order=[[made[kind].pk for kind in group] for group in order],
                labeler=labeler,
                source="labeler" if labeler is not None else "import",
            )
            # Hand-made outcomes: every pair of kinds in different generators, by tie group.
            placed = [(rank, made[kind].pk, kind) for rank, group in enumerate(order) for kind in group]
            placed.sort()
            for i, (rank_a, _, kind_a) in enumerate(placed):
                for rank_b, _, kind_b in placed[i + 1 :]:
                    if names[kind_a] == names[kind_b]:
                        continue
                    result: Result = "tie" if rank_a == rank_b else "a"
                    expected.append(Outcome(names[kind_a], names[kind_b], result, ranking.pk))
    return expected


@pytest.fixture
def reviewer(db, project):
    user = get_user_model().objects.create_user("rita")
    Membership.objects.create(project=project, user=user, role=Role.REVIEWER)
    return user


@pytest.fixture
def eager_tasks():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def test_generators_are_backend_model_and_the_sampling_settings_that_matter():
    assert (
        candidate_generator(
            source="model",
            backend="embedded",
            model_name="gemma-3-270m",
            sampling_params={**COOL, "live": True},
        ).name
        == COOL_NAME
    )
    assert candidate_generator(source="demonstration").name == "demonstration"
    assert candidate_generator(source="edit", backend="x").name == "edit"
    assert candidate_generator(source="import", model_name="hh-rlhf").name == "import: hh-rlhf"
    assert candidate_generator(source="model").name == "model (provenance unknown)"
    assert leaderboard_runs.RESAMPLES == leaderboard_math.RESAMPLES  # the copy kept torch-free


def test_outcomes_come_from_counted_labeler_rankings_between_different_generators(
    project, labeler, other_labeler, reviewer
):
    expected = world_make(project, [labeler, other_labeler], prompts=2)
    # Not counted: an imported ranking, and an excluded one.
    [imported] = world_make(project, [None], prompts=1, start=10)[:1]
    excluded_outcomes = world_make(project, [labeler], prompts=1, start=20)
    ranking_exclude(ranking_id=excluded_outcomes[0].cluster_id, actor=reviewer, reason="spam")

    rows = leaderboard_ranked_candidates(project_id=project.pk, cutoff=None)
    outcomes = leaderboard_outcomes(rows=rows.rows)
    assert sorted(map(repr, outcomes)) == sorted(map(repr, expected))
    assert set(rows.generators) == {"demonstration", COOL_NAME, HOT_NAME}
    assert rows.generators[HOT_NAME].sampling == {"temperature": 1.3, "top_p": 0.95, "max_tokens": 256}
    clusters = {outcome.cluster_id for outcome in outcomes}
    assert imported.cluster_id not in clusters and excluded_outcomes[0].cluster_id not in clusters
    # The first ranking, [[d], [c, h], [c2]]: d beats c, h and c2; c ties h; h beats c2; c-c2 says nothing.
    first = [o for o in outcomes if o.cluster_id == expected[0].cluster_id]
    assert len(first) == 5 and sum(o.result == "tie" for o in first) == 1


def test_the_run_s_result_is_leaderboard_compute_on_the_same_outcomes(
    project, labeler, other_labeler, reviewer, api_client, eager_tasks, django_capture_on_commit_callbacks
):
    expected = world_make(project, [labeler, other_labeler], prompts=8)
    version = RewardModel.objects.create(
        project=project, trigger="api", status="succeeded", version=1, is_active=True
    )
    # Scores for some candidates: the mean per generator is over every scored candidate.
    by_kind: dict[str, list[float]] = {}
    for candidate in Candidate.objects.filter(prompt__project=project).order_by("pk")[:12]:
        score = candidate.pk % 7 / 3.0
        CandidateScore.objects.create(candidate=candidate, reward_model=version, score=score)
        name = candidate_generator(
            source=candidate.source,
            backend=candidate.backend,
            model_name=candidate.model_name,
            sampling_params=candidate.sampling_params,
        ).name
        by_kind.setdefault(name, []).append(score)

    api_client.force_authenticate(reviewer)
    url = reverse("project-leaderboard", kwargs={"project_id": project.pk})
    with django_capture_on_commit_callbacks(execute=True):
        first = api_client.get(url)
    assert first.status_code == 200, first.content
    assert first.json()["leaderboard"] is None  # computed after the answer, in the task
    body = api_client.get(url).json()
    assert body["run"]["status"] == "done" and body["run"]["progress"] == 1.0 and body["up_to_date"]

    reference = leaderboard_compute(outcomes=expected, resamples=leaderboard_math.RESAMPLES, seed=0)
    board = body["leaderboard"]
    assert [row["name"] for row in board["generators"]] == [s.generator for s in reference.standings]
    for row, standing in zip(board["generators"], reference.standings, strict=True):
        assert row["strength"] == pytest.approx(standing.strength, abs=1e-12)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(
            (standing.ci_low, standing.ci_high), abs=1e-12
        )
        assert (row["wins"], row["losses"], row["ties"], row["comparisons"]) == (
            standing.wins,
            standing.losses,
            standing.ties,
            standing.comparisons,
        )
        scores = by_kind.get(row["name"], [])
        assert row["reward_model_scored"] == len(scores)
        if scores:
            assert row["reward_model_mean_score"] == pytest.approx(sum(scores) / len(scores))
    assert board["matrix"]["generators"] == reference.generators
    assert board["matrix"]["win_rate"] == reference.win_rate
    assert board["matrix"]["comparisons"] == reference.comparisons
    assert board["outcomes"] == len(expected) and board["rankings"] == 16
    assert board["reward_model"] == {"id": version.pk, "version": 1}
    # The demonstration is first in 3 of the 4 orders: it leads, with an interval around it.
    assert board["generators"][0]["name"] == "demonstration"
    top = board["generators"][0]
    assert top["ci_low"] < top["strength"] < top["ci_high"]


def test_a_done_run_is_the_answer_until_the_data_change(project, labeler, other_labeler, reviewer):
    world_make(project, [labeler], prompts=3)
    state = leaderboard_request(project=project, requested_by=reviewer, resamples=20)
    run = state.run
    assert run.status == LeaderboardRunStatus.QUEUED and state.latest is None
    # Asked again while it waits: the same run, never a second one.
    assert leaderboard_request(project=project, resamples=20).run.pk == run.pk
    run = leaderboard_run_compute(run_id=run.pk)
    assert run.status == LeaderboardRunStatus.DONE
    assert leaderboard_run_compute(run_id=run.pk) is None  # a duplicate message does nothing

    cached = leaderboard_request(project=project, resamples=20)
    assert cached.run.pk == run.pk and cached.latest.pk == run.pk and cached.up_to_date
    assert LeaderboardRun.objects.count() == 1

    # A new ranking moves the cut-off: a new run, and the old result is shown meanwhile.
    world_make(project, [other_labeler], prompts=1, start=50)
    moved = leaderboard_request(project=project, resamples=20)
    assert moved.run.pk != run.pk and moved.run.status == LeaderboardRunStatus.QUEUED
    assert moved.latest.pk == run.pk and not moved.up_to_date
    assert moved.run.cutoff > run.cutoff
    leaderboard_run_compute(run_id=moved.run.pk)
    second = LeaderboardRun.objects.get(pk=moved.run.pk)
    assert second.result["rankings"] == 4 and run.result["rankings"] == 3

    # Excluding a ranking leaves the newest ranking as it was, but changes the data: a new run.
    ranking_id = leaderboard_ranked_candidates(project_id=project.pk, cutoff=None).rows[0].ranking_id
    ranking_exclude(ranking_id=ranking_id, actor=reviewer, reason="spam")
    excluded = leaderboard_request(project=project, resamples=20)
    assert excluded.run.pk not in (run.pk, second.pk) and excluded.run.cutoff == second.cutoff
    leaderboard_run_compute(run_id=excluded.run.pk)
    assert LeaderboardRun.objects.get(pk=excluded.run.pk).result["rankings"] == 3

    # A new active reward-model version changes the scores beside the strengths: a new run.
    RewardModel.objects.create(project=project, trigger="api", status="succeeded", version=1, is_active=True)
    assert leaderboard_request(project=project, resamples=20).run.status == LeaderboardRunStatus.QUEUED


def test_a_failed_run_is_shown_until_refreshed_and_a_silent_worker_s_run_fails(project, labeler, reviewer):
    world_make(project, [labeler], prompts=2)
    run = leaderboard_request(project=project, resamples=10).run
    # The worker died mid-run: no progress for longer than the stale bound.
    LeaderboardRun.objects.filter(pk=run.pk).update(
        status=LeaderboardRunStatus.RUNNING, heartbeat_at=timezone.now() - RUNNING_STALE_AFTER * 2
    )
    state = leaderboard_request(project=project, resamples=10)
    assert state.run.pk == run.pk and state.run.status == LeaderboardRunStatus.FAILED
    assert "stopped reporting progress" in state.run.error
    # Not retried on every page load ...
    assert leaderboard_request(project=project, resamples=10).run.pk == run.pk
    # ... but on refresh.
    retried = leaderboard_request(project=project, resamples=10, refresh=True).run
    assert retried.pk != run.pk and leaderboard_run_compute(run_id=retried.pk).status == "done"

    # A redelivered message takes over a running run whose worker fell silent.
    again = leaderboard_request(project=project, resamples=10, refresh=True).run
    LeaderboardRun.objects.filter(pk=again.pk).update(
        status=LeaderboardRunStatus.RUNNING, heartbeat_at=timezone.now() - RUNNING_STALE_AFTER - timedelta(1)
    )
    assert leaderboard_run_compute(run_id=again.pk).status == LeaderboardRunStatus.DONE


def test_a_project_without_comparisons_gets_an_empty_leaderboard(project, labeler):
    prompt = prompt_create(project=project, turns=[{"role": "user", "content": "Only one generator?"}])
    first, second = candidate_make(prompt, "one", "cool"), candidate_make(prompt, "two", "cool")
    ranking_record(
        prompt=prompt, candidate_ids=[first.pk, second.pk], order=[[first.pk], [second.pk]], labeler=labeler
    )
    run = leaderboard_request(project=project, resamples=10).run
    done = leaderboard_run_compute(run_id=run.pk)
    assert done.status == LeaderboardRunStatus.DONE
    assert done.result["outcomes"] == 0 and done.result["matrix"]["generators"] == []
    # Ranked, but only against itself: listed without a strength.
    [row] = done.result["generators"]
    assert row["name"] == COOL_NAME and row["strength"] is None and row["comparisons"] == 0


def test_progress_is_recorded_during_the_bootstrap(project, labeler, other_labeler):
    world_make(project, [labeler, other_labeler], prompts=3)
    shares: list[float] = []
    outcomes = leaderboard_outcomes(
        rows=leaderboard_ranked_candidates(project_id=project.pk, cutoff=None).rows
    )
    leaderboard_compute(outcomes=outcomes, resamples=600, progress=shares.append)
    # The point fit, then each of three chunks of at most 256 resamples.
    assert shares == pytest.approx([1 / 601, 257 / 601, 513 / 601, 1.0])

    # Every progress the run's row was given, read from the UPDATEs on their way to the database.
    table, recorded = LeaderboardRun._meta.db_table, []

    def watch(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and table in sql and '"progress" = %s' in sql:
            recorded.append(float(params[sql[: sql.index('"progress" = %s')].count("%s")]))
        return execute(sql, params, many, context)

    run = leaderboard_request(project=project, resamples=600).run
    with connection.execute_wrapper(watch):
        leaderboard_run_compute(run_id=run.pk)
    # Claimed at 0, read at 0.05, the fit's four steps, done at 1: always forward.
    assert len(recorded) == 7 and recorded == sorted(recorded)
    assert recorded[0] == 0.0 and recorded[1] == pytest.approx(0.05) and recorded[-1] == 1.0


@pytest.mark.parametrize(
    ("role", "read", "refresh"),
    [("labeler", 403, 403), ("reviewer", 200, 202), ("admin", 200, 202), ("outsider", 404, 404)],
)
def test_reviewers_and_admins_read_and_refresh_labelers_do_not(
    project, labeler, reviewer, api_client, django_user_model, role, read, refresh
):
    users = {"labeler": labeler, "reviewer": reviewer}
    if role == "admin":
        users["admin"] = django_user_model.objects.create_user("pat")
        Membership.objects.create(project=project, user=users["admin"], role=Role.ADMIN)
    if role == "outsider":
        users["outsider"] = django_user_model.objects.create_user("olga")
    api_client.force_authenticate(users[role])
    url = reverse("project-leaderboard", kwargs={"project_id": project.pk})
    assert api_client.get(url).status_code == read
    response = api_client.post(reverse("project-leaderboard-refresh", kwargs={"project_id": project.pk}))
    assert response.status_code == refresh
    if refresh == 202:
        assert response.json()["run"]["status"] == "queued"
    else:
        assert set(response.json()) == {"error"} and not LeaderboardRun.objects.exists()
    api_client.force_authenticate(None)
    assert api_client.get(url).status_code in (401, 403)


def test_the_dashboard_page_has_the_leaderboard_panel(project, reviewer, client):
    client.force_login(reviewer)
    page = client.get(reverse("dashboard-project", kwargs={"project_id": project.pk})).content.decode()
    api = reverse("project-leaderboard", kwargs={"project_id": project.pk})
    assert f'id="leaderboard" data-url="{api}"' in page
    assert f'data-refresh-url="{api}/refresh"' in page
    assert "js/dashboard_leaderboard.js" in page
    # CSP: the page's scripts are files; the only inline <script> is the JSON config (not run).
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page)
    assert all('type="application/json"' in attributes for attributes in inline)
