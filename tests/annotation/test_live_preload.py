"""A live worker's pool processes load the models converse turns stream from as they start
(config/celery.py), so the first turn does not wait for a model to load. End to end, with a real
worker, bench/conversation.py's small mode (tests/bench) checks that every pool process preloads."""

from __future__ import annotations

import pytest

from annotation.generation.embedded import model_load, packaged_model_path
from annotation.models import Project
from annotation.services.generation import live_models_preload

pytestmark = pytest.mark.django_db


def test_the_models_of_projects_that_converse_on_the_embedded_backend_are_loaded_with_their_stream_context(
    project, settings
):
    settings.GENERATION_DEFAULT_MODEL = ""
    # No project converses, or only one that is inactive or on an HTTP backend: nothing to load.
    assert live_models_preload() == []
    Project.objects.create(name="Paused", converse_per_prompt=2, is_active=False)
    Project.objects.create(
        name="Remote", converse_per_prompt=2, generation_backend="openai", generation_model="m"
    )
    assert live_models_preload() == []

    project.converse_per_prompt = 1
    project.save(update_fields=["converse_per_prompt"])
    Project.objects.create(name="Same model", converse_per_prompt=1)
    path = str(packaged_model_path())

    assert live_models_preload() == [path]  # two projects, one model: loaded once
    loaded = model_load(path=path, threads=settings.GENERATION_THREADS)
    assert loaded.stream_context is not None  # the first stream makes nothing more


def test_a_model_that_cannot_be_loaded_is_skipped_and_the_others_still_load(project, settings, tmp_path):
    settings.MODEL_DIRS = [str(tmp_path)]
    Project.objects.create(name="Broken", converse_per_prompt=1, generation_model=str(tmp_path / "none.gguf"))
    project.converse_per_prompt = 1
    project.save(update_fields=["converse_per_prompt"])

    assert live_models_preload() == [str(packaged_model_path())]
