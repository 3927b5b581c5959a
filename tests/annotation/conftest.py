"""Fixtures shared by the annotation tests."""

from __future__ import annotations

import pytest

from tests.annotation.generation_servers import ScriptedServer


@pytest.fixture
def scripted_server():
    """A local OpenAI-compatible server that answers from a script (and fails on purpose when told)."""
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture
def http_project(project, scripted_server, settings):
    """The shared test project, generating from the scripted server with quick retries."""
    settings.GENERATION_HTTP_MAX_ATTEMPTS = 1
    settings.GENERATION_HTTP_BACKOFF_SECONDS = 0.01
    settings.GENERATION_HTTP_CONCURRENCY = 1  # requests in a fixed order, so the script is predictable
    # The scripted server listens on loopback, which generation reaches only when listed explicitly.
    settings.GENERATION_ALLOWED_HOSTS = ["*", "127.0.0.1"]
    project.generation_backend = "openai"
    project.generation_base_url = scripted_server.url
    project.generation_model = "scripted"
    project.generation_api_key = "sk-secret-key-77"
    project.save()
    return project
