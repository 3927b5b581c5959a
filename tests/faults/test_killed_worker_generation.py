"""A worker SIGKILLed in the middle of generating: its message comes back from Redis after the
visibility timeout (short here, through CELERY_TASK_TIME_LIMIT), and the next worker redoes it.
Generation talks to a slow scripted OpenAI-compatible server, so nothing here runs a model."""

from __future__ import annotations

import time

import pytest

from annotation.models import Prompt
from annotation.services.candidates import candidates_top_up
from tests.annotation.generation_servers import Reply, ScriptedServer
from tests.faults.processes import Worker, celery_broker, wait_for

TASK_TIME_LIMIT = 6  # seconds: the worker's CELERY_TASK_TIME_LIMIT
VISIBILITY_TIMEOUT = TASK_TIME_LIMIT + 5  # what config/settings.py derives from it


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_prompts_of_a_killed_generation_worker_are_redone_within_the_visibility_timeout(
    project, make_prompts, redis_server, tmp_path
):
    server = ScriptedServer().start()
    project.generation_backend, project.generation_base_url = "openai", server.url
    project.generation_model, project.low_water_mark = "scripted", 2
    project.save()
    prompts = make_prompts(project, 2)
    server.default = Reply(delay=30)  # the first worker is waiting on an answer when it is killed
    env = {
        "CELERY_TASK_TIME_LIMIT": str(TASK_TIME_LIMIT),
        "GENERATION_HTTP_MAX_ATTEMPTS": "1",
        "GENERATION_HTTP_CONCURRENCY": "1",
        "GENERATION_ALLOWED_HOSTS": "*,127.0.0.1",
    }
    workers = [
        Worker(broker_url=redis_server.url, log=tmp_path / f"worker-{n}.log", env=env, queues="generation")
        for n in (1, 2)
    ]
    try:
        workers[0].start().wait_ready()
        with celery_broker(redis_server.url):
            assert set(candidates_top_up()[project.pk]) == {prompt.pk for prompt in prompts}
        wait_for(lambda: server.requests, timeout=30, what="the first worker to ask for an answer")
        workers[0].kill()
        killed_at = time.monotonic()
        server.default = Reply()  # answers at once from now on
        workers[1].start().wait_ready()

        def all_generated() -> bool:
            rows = Prompt.objects.filter(pk__in=[p.pk for p in prompts])
            return all(p.candidates.count() == project.k and p.generation_queued_at is None for p in rows)

        wait_for(all_generated, timeout=60, what=f"both prompts\n{workers[1].output()[-3000:]}")
        redo_seconds = time.monotonic() - killed_at
    finally:
        for worker in workers:
            worker.kill()
        server.stop()
    print(
        f"\nkilled generation worker: 2 prompts (1 in flight, 1 waiting in the queue) redone "
        f"{redo_seconds:.1f} s after SIGKILL (visibility timeout {VISIBILITY_TIMEOUT} s); "
        f"left marked as generating: 0"
    )
    # The killed worker's message is handed back after the visibility timeout (swept every second):
    # redone then, plus the second worker's start-up, not after the 30 minutes a mark once took. The
    # timeout runs from the message's delivery, a little before the kill (the worker had to start
    # its request first), hence the lower bound's few seconds of slack.
    assert VISIBILITY_TIMEOUT - 3 <= redo_seconds < VISIBILITY_TIMEOUT + 25
