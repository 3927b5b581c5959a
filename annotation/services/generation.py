"""A project's generation backend and sampling settings, built from the project and Django settings.

The backends in `annotation.generation` know nothing of Django: this is the one place that reads
the GENERATION_* settings and a Project's generation fields and hands them over as arguments.
"""

from __future__ import annotations

import logging

from django.conf import settings

from annotation.generation.base import GenerationBackend, GenerationFailed, SamplingParams
from annotation.generation.embedded import EmbeddedBackend, model_path_confine
from annotation.generation.hosts import HostPolicy
from annotation.generation.openai_http import OpenAICompatibleBackend
from annotation.models import Project
from annotation.models.projects import GenerationBackend as BackendChoice

logger = logging.getLogger(__name__)


def generation_sampling_get(*, project: Project) -> SamplingParams:
    """The project's sampling settings, checked: a bad value stored by hand gets a clear error.

    Raises GenerationFailed naming the bad setting.
    """
    stop = project.stop_sequences or []
    if not isinstance(stop, list) or not all(isinstance(item, str) and item for item in stop):
        raise GenerationFailed("stop sequences must be a JSON list of non-empty strings")
    if not 0.0 <= project.temperature <= 2.0:
        raise GenerationFailed(f"temperature must be between 0 and 2, not {project.temperature}")
    if not 0.0 <= project.top_p <= 1.0:
        raise GenerationFailed(f"top_p must be between 0 and 1, not {project.top_p}")
    if project.max_tokens < 1:
        raise GenerationFailed("max_tokens must be at least 1")
    return SamplingParams(
        temperature=float(project.temperature),
        top_p=float(project.top_p),
        max_tokens=int(project.max_tokens),
        stop=tuple(stop),
    )


def generation_base_url_check(*, url: str) -> None:
    """Refuse a base URL whose host GENERATION_ALLOWED_HOSTS does not allow, as it resolves now.

    Raises GenerationFailed (HostRefused for a host that is not allowed, GenerationUnavailable for a
    name that does not resolve), with a message meant for the admin who typed it.
    """
    try:
        policy = HostPolicy.parse(settings.GENERATION_ALLOWED_HOSTS)
    except ValueError as error:
        raise GenerationFailed(str(error)) from None
    policy.url_check(url)


def generation_model_path_check(*, path: str) -> None:
    """Refuse a GGUF path for the embedded backend outside the MODEL_DIRS folders (after resolving
    symlinks and `..`). Raises GenerationFailed with a message meant for the admin who typed it."""
    model_path_confine(path, allowed_dirs=settings.MODEL_DIRS)


def generation_backend_get(*, project: Project) -> GenerationBackend:
    """The backend the project is set to use, configured from settings.

    Settings are read at each call, not at import, so a worker (or a test) sees their current values.
    Raises GenerationFailed when the project's generation settings are incomplete.
    """
    if project.generation_backend == BackendChoice.EMBEDDED:
        # The project's path comes from the admin (or a row edited in the database), so the worker
        # checks it again where it loads the file; the operator's default comes from the deployment.
        return EmbeddedBackend(
            model_path=project.generation_model or settings.GENERATION_DEFAULT_MODEL or None,
            threads=settings.GENERATION_THREADS,
            allowed_dirs=settings.MODEL_DIRS if project.generation_model else None,
        )
    if project.generation_backend == BackendChoice.OPENAI:
        return OpenAICompatibleBackend(
            base_url=project.generation_base_url,
            model=project.generation_model,
            api_key=project.generation_api_key,
            connect_timeout=settings.GENERATION_HTTP_CONNECT_TIMEOUT,
            read_timeout=settings.GENERATION_HTTP_READ_TIMEOUT,
            max_attempts=settings.GENERATION_HTTP_MAX_ATTEMPTS,
            backoff_seconds=settings.GENERATION_HTTP_BACKOFF_SECONDS,
            concurrency=settings.GENERATION_HTTP_CONCURRENCY,
            allowed_hosts=settings.GENERATION_ALLOWED_HOSTS,
        )
    raise GenerationFailed(f"unknown generation backend {project.generation_backend!r}")


def live_models_preload() -> list[str]:
    """Load now the embedded models that converse turns stream from: those of active projects with
    conversations on the embedded backend, each once, with its streaming context. Returns their paths.

    For a pool process of the live worker as it starts (config/celery.py), so that the first turn it
    serves does not wait seconds for the model. A model that cannot be loaded is logged and skipped:
    the turn that needs it reports the error to the labeler.
    """
    projects = Project.objects.filter(
        is_active=True, converse_per_prompt__gt=0, generation_backend=BackendChoice.EMBEDDED
    )
    paths: list[str] = []
    for project in projects:
        try:
            backend = generation_backend_get(project=project)
            if isinstance(backend, EmbeddedBackend) and backend.model_path not in paths:
                backend.preload()
                paths.append(backend.model_path)
        except GenerationFailed as error:
            logger.warning("could not preload the model of project %s: %s", project.pk, error.message)
    return paths
