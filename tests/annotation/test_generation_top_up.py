"""The periodic top-up of each project's pool of ready prompts, and the admin actions."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone

from annotation.admin.prompts import generate_now, regenerate
from annotation.models import Candidate, Prompt
from annotation.selectors.candidates import QUEUED_STALE_AFTER, project_low_water_mark, prompts_ready
from annotation.services import candidates as services
from annotation.services.rankings import ranking_record
from annotation.tasks import candidates_generate, candidates_top_up
from config.celery import app as celery_app

GENERATE = "annotation.generation.candidates_generate"


def _candidate(prompt: Prompt, text: str, source: str = "import") -> Candidate:
    return Candidate.objects.create(
        prompt=prompt, text=text, content_hash=services.candidate_text_hash(text=text), source=source
    )


# --- The tasks' names -------------------------------------------------------------------------


def test_generation_tasks_keep_the_names_that_beat_routes_and_queued_messages_use():
    celery_app.loader.import_default_modules()  # what a worker's autodiscovery does
    assert candidates_generate.name == GENERATE and GENERATE in celery_app.tasks
    assert candidates_top_up.name == "annotation.generation.candidates_top_up"
    assert candidates_top_up.name in celery_app.tasks
    assert celery_app.conf.task_routes[GENERATE] == {"queue": "generation"}
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert "annotation.generation.candidates_top_up" in scheduled
    assert scheduled <= set(celery_app.tasks)


# --- The periodic top-up -----------------------------------------------------------------------


def test_low_water_mark_defaults_to_two_per_member_and_can_be_set(project, settings):
    assert project.memberships.count() == 2
    assert project_low_water_mark(project=project) == 4
    settings.GENERATION_LOW_WATER_MARK = 6
    assert project_low_water_mark(project=project) == 6
    project.low_water_mark = 3
    assert project_low_water_mark(project=project) == 3


def test_top_up_is_idempotent_under_repeated_runs(project, make_prompts, django_capture_on_commit_callbacks):
    prompts = make_prompts(project, 10)
    now = timezone.now()

    with django_capture_on_commit_callbacks() as callbacks:
        first = services.candidates_top_up(now=now)
    assert first == {project.pk: [p.pk for p in prompts[:4]]}
    assert len(callbacks) == 4

    for _ in range(3):
        with django_capture_on_commit_callbacks() as callbacks:
            assert services.candidates_top_up(now=now + timedelta(minutes=5)) == {}
        assert callbacks == []

    # Two jobs finish: the pool counts them as ready and the two still queued as on their way.
    for prompt in prompts[:2]:
        for index in range(project.k):
            _candidate(prompt, f"Answer {index}")
        Prompt.objects.filter(pk=prompt.pk).update(generation_queued_at=None)
    assert services.candidates_top_up(now=now + timedelta(minutes=6)) == {}
    assert prompts_ready(project=project).count() == 2

    # A job lost with its worker: after the stale time its prompts are enqueued again.
    later = now + QUEUED_STALE_AFTER + timedelta(minutes=1)
    assert services.candidates_top_up(now=later) == {project.pk: [p.pk for p in prompts[2:4]]}


def test_top_up_follows_priority_and_skips_what_needs_no_work(
    project, make_prompts, labeler, django_capture_on_commit_callbacks
):
    low, high, errored, ranked = make_prompts(project, 4)
    Prompt.objects.filter(pk=high.pk).update(priority=5)
    services.prompt_generation_error_record(prompt_id=errored.pk, message="broken")
    project.rankings_per_prompt = 1
    project.low_water_mark = 10
    project.save()
    candidate_ids = [_candidate(ranked, f"Answer {index}").pk for index in range(project.k)]
    ranking_record(
        prompt=ranked, candidate_ids=candidate_ids, order=[[i] for i in candidate_ids], labeler=labeler
    )

    with django_capture_on_commit_callbacks():
        enqueued = services.candidates_top_up()
    assert enqueued == {project.pk: [high.pk, low.pk]}

    # The error cooldown ends; an inactive project or one that wants no rankings is left alone.
    later = timezone.now() + timedelta(hours=2)
    with django_capture_on_commit_callbacks():
        assert services.candidates_top_up(now=later + QUEUED_STALE_AFTER) == {
            project.pk: [high.pk, low.pk, errored.pk]
        }
    project.is_active = False
    project.save()
    assert services.candidates_top_up(now=later + 3 * QUEUED_STALE_AFTER) == {}


def test_top_up_task_fills_the_pool_end_to_end(
    http_project, make_prompts, django_capture_on_commit_callbacks
):
    prompts = make_prompts(http_project, 6)
    with django_capture_on_commit_callbacks() as callbacks:
        candidates_top_up.apply().get()
    # Sending is left out (no broker message outlives the test); run the jobs as a worker would.
    assert len(callbacks) == 4
    queued = Prompt.objects.filter(generation_queued_at__isnull=False).values_list("pk", flat=True)
    assert sorted(queued) == [p.pk for p in prompts[:4]]
    for prompt_id in queued:
        candidates_generate.apply(args=[prompt_id]).get()
    assert prompts_ready(project=http_project).count() == 4
    assert not Prompt.objects.filter(generation_queued_at__isnull=False).exists()
    with django_capture_on_commit_callbacks() as callbacks:
        assert candidates_top_up.apply().get() == {}
    assert callbacks == []


@pytest.mark.redis
def test_top_up_puts_one_message_per_prompt_on_the_generation_queue(
    project, make_prompts, django_capture_on_commit_callbacks
):
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    before = client.llen("generation")
    prompts = make_prompts(project, 5)
    with django_capture_on_commit_callbacks(execute=True):
        services.candidates_top_up()
        services.candidates_top_up()
    added = client.llen("generation") - before
    # kombu pushes new messages on the left: take back exactly ours.
    messages = [json.loads(client.lpop("generation")) for _ in range(added)]
    assert added == 4
    assert {m["headers"]["task"] for m in messages} == {GENERATE}
    prompt_ids = sorted(json.loads(base64.b64decode(m["body"]))[0][0] for m in messages)
    assert prompt_ids == [p.pk for p in prompts[:4]]


# --- Admin actions -----------------------------------------------------------------------------


def _admin_request(admin_user):
    request = RequestFactory().post("/admin/annotation/prompt/")
    request.user = admin_user
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


def test_generate_now_queues_short_prompts_and_clears_errors(
    project, make_prompts, admin_user, django_capture_on_commit_callbacks
):
    short, full = make_prompts(project, 2)
    for index in range(project.k):
        _candidate(full, f"Answer {index}")
    services.prompt_generation_error_record(prompt_id=short.pk, message="broken")
    request = _admin_request(admin_user)

    with django_capture_on_commit_callbacks() as callbacks:
        generate_now(admin.site._registry[Prompt], request, Prompt.objects.filter(pk__in=[short.pk, full.pk]))

    assert len(callbacks) == 1
    short.refresh_from_db()
    assert short.generation_queued_at is not None and short.generation_error == ""
    [message] = [str(m) for m in get_messages(request)]
    assert "1 prompt(s)" in message and "1 already had K" in message


def test_regenerate_replaces_model_candidates_of_unranked_prompts_only(
    project, make_prompts, admin_user, labeler, django_capture_on_commit_callbacks
):
    fresh, ranked = make_prompts(project, 2)
    _candidate(fresh, "Imported, kept.")
    for prompt in (fresh, ranked):
        for index in range(3):
            _candidate(prompt, f"Model answer {index}", source="model")
    ids = list(ranked.candidates.values_list("pk", flat=True))
    ranking_record(prompt=ranked, candidate_ids=ids, order=[[i] for i in ids], labeler=labeler)
    request = _admin_request(admin_user)

    with django_capture_on_commit_callbacks() as callbacks:
        regenerate(admin.site._registry[Prompt], request, Prompt.objects.filter(pk__in=[fresh.pk, ranked.pk]))

    assert len(callbacks) == 1
    assert list(fresh.candidates.values_list("text", flat=True)) == ["Imported, kept."]
    assert ranked.candidates.count() == 3
    [message] = [str(m) for m in get_messages(request)]
    assert "1 prompt(s)" in message and "Skipped 1" in message


@pytest.mark.postgres
def test_overlapping_top_ups_enqueue_each_prompt_once(
    transactional_db, http_project, make_prompts, scripted_server
):
    """Two top-ups racing (two beat ticks, two machines) split the prompts between them."""
    prompts = make_prompts(http_project, 10)
    barrier = threading.Barrier(2)
    results: list[dict[int, list[int]]] = []

    def top_up() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(services.candidates_top_up())
        finally:
            connection.close()

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True  # the enqueued jobs run here, against the scripted server
    try:
        threads = [threading.Thread(target=top_up) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        celery_app.conf.task_always_eager = previous

    claimed = [prompt_id for result in results for ids in result.values() for prompt_id in ids]
    assert len(results) == 2
    assert sorted(claimed) == [p.pk for p in prompts[:4]]
    assert len(scripted_server.requests) == 4 * http_project.k
    assert prompts_ready(project=http_project).count() == 4


def test_a_fast_and_a_slow_labeler_both_always_have_work_while_prompts_remain(
    project, labeler, other_labeler, make_prompts, django_capture_on_commit_callbacks
):
    """The fast labeler ranks two tasks for each one of the slow labeler's. A pool that meets its
    mark with prompts only the slow one may still take must not leave the fast one waiting: after
    each top-up (and its generation), whoever still has prompts left to rank can lease one."""
    from annotation.selectors.queue import prompts_needing_work
    from annotation.services.assignments import assignment_lease
    from annotation.services.rankings import ranking_submit

    make_prompts(project, 14)
    speeds = {labeler: 2, other_labeler: 1}  # tasks per top-up: the fast one uses up her own margin
    ranked = {labeler: 0, other_labeler: 0}

    def top_up_and_generate() -> None:
        with django_capture_on_commit_callbacks():  # the generation jobs, run here by hand
            enqueued = services.candidates_top_up(now=timezone.now())
        for prompt_id in enqueued.get(project.pk, []):
            prompt = Prompt.objects.get(pk=prompt_id)
            for index in range(project.k - prompt.candidates.count()):
                _candidate(prompt, f"Answer {index} to {prompt_id}", source="model")
            Prompt.objects.filter(pk=prompt_id).update(generation_queued_at=None)

    def remaining(user) -> int:
        return prompts_needing_work(
            project=project, labeler=user, kind="rank", candidates_ready=False
        ).count()

    for _round in range(30):
        top_up_and_generate()
        if not any(remaining(user) for user in speeds):
            break
        for user, speed in speeds.items():
            for _ in range(speed):
                if not remaining(user):
                    break
                assignment, _created = assignment_lease(labeler=user, kind="rank")
                assert assignment is not None, f"{user.username} waits with {remaining(user)} prompt(s) left"
                ranking_submit(
                    assignment_id=assignment.pk,
                    labeler=user,
                    order=[[c] for c in assignment.shown_order],
                    idempotency_key=f"{user.pk}-{assignment.pk}",
                )
                ranked[user] += 1
    assert ranked == {labeler: 14, other_labeler: 14}
