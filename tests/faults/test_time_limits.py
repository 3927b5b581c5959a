"""The bound on a killed worker's work: every acks-late task ends (hard time limit) before the broker
would hand its message to a second worker (visibility timeout), which is minutes, not hours."""

from __future__ import annotations

from django.conf import settings

from config.celery import app


def test_every_acks_late_task_ends_before_its_message_could_be_handed_out_again():
    app.loader.import_default_modules()
    visibility = settings.CELERY_BROKER_VISIBILITY_TIMEOUT
    assert visibility <= 15 * 60
    ours = {name: task for name, task in app.tasks.items() if name.startswith(("annotation.", "rewards."))}
    late = {name: task for name, task in ours.items() if task.acks_late}
    assert "annotation.generation.candidates_generate" in late and "rewards.candidates_score" in late
    for name, task in late.items():
        assert task.time_limit is not None and task.soft_time_limit < task.time_limit, name
        assert task.time_limit <= settings.CELERY_TASK_TIME_LIMIT < visibility, name
    # Training outlives the visibility timeout, so it is not acks-late: its heartbeat says who has it.
    assert set(ours) - set(late) == {"rewards.reward_model_train"}
