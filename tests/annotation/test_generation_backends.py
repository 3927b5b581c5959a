"""Generation backends: the embedded llama.cpp model, and the OpenAI-compatible HTTP client against
llama.cpp's real server and against a scripted server that fails on purpose."""

from __future__ import annotations

import logging
import time

import pytest

from annotation.generation.base import GenerationFailed, GenerationUnavailable, SamplingParams
from annotation.generation.embedded import EmbeddedBackend, model_load, packaged_model_path, thread_count
from annotation.generation.formatting import (
    BASE_MODEL_STOP,
    completion_clean,
    stop_sequences_merge,
    turns_to_plain_text,
)
from annotation.generation.openai_http import OpenAICompatibleBackend
from annotation.services.candidates import candidates_generate
from annotation.services.generation import generation_backend_get, generation_sampling_get
from tests.annotation.generation_servers import (
    Reply,
    ScriptedServer,
    free_port,
    llama_server_start,
    llama_server_stop,
)

API_KEY = "sk-test-do-not-leak-4242"
# Every server here listens on loopback, which generation reaches only when it is listed.
LOOPBACK = ("*", "127.0.0.1")
# Small so that a real model answers in well under a second per sample.
SHORT = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=24)
OPEN_QUESTION = [{"role": "user", "content": "Write one sentence about the sea."}]


@pytest.fixture
def scripted_server():
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    process, base_url = llama_server_start(model=packaged_model_path(), api_key=API_KEY, log_path=log_path)
    yield base_url
    llama_server_stop(process)


def _fast_backend(server: ScriptedServer, **overrides) -> OpenAICompatibleBackend:
    options = {"read_timeout": 2.0, "max_attempts": 3, "backoff_seconds": 0.01, "allowed_hosts": LOOPBACK}
    options |= overrides
    return OpenAICompatibleBackend(base_url=server.url, model="scripted", api_key=API_KEY, **options)


# --- Formatting --------------------------------------------------------------------------------


def test_conversation_renders_as_question_answer_transcript():
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert turns_to_plain_text(turns=turns) == (
        "Be brief.\n\nQuestion: What is 2+2?\nAnswer: 4.\n\nQuestion: And 3+3?\nAnswer:"
    )


def test_stop_sequences_merge_keeps_project_ones_first_without_repeats():
    merged = stop_sequences_merge(project_stop=["###", "\nQuestion:"], base_model=True)
    assert merged == ("###", "\nQuestion:", "\nAnswer:")
    assert stop_sequences_merge(project_stop=[], base_model=True) == BASE_MODEL_STOP
    assert stop_sequences_merge(project_stop=["###"], base_model=False) == ("###",)
    assert completion_clean(text="  Paris.\nQuestion:") == "Paris."


# --- Embedded ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_embedded_backend_gives_n_distinct_completions_with_provenance():
    backend = EmbeddedBackend()
    seeds = [11, 22, 33, 44]
    completions = backend.generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=seeds)

    assert [c.seed for c in completions] == seeds
    texts = [c.text for c in completions]
    assert all(text.strip() for text in texts)
    assert len(set(texts)) == len(seeds)
    for completion in completions:
        assert completion.prompt_tokens and completion.prompt_tokens > 5
        assert 1 <= completion.completion_tokens <= SHORT.max_tokens
        assert completion.seconds > 0
        assert completion.finish_reason in {"stop", "length"}
    assert backend.name == "embedded"
    assert backend.model_name == "gemma-3-270m-q4_k_m.gguf"
    record = backend.sampling_record(sampling=SHORT)
    assert record["prompt_format"] == "question-answer-v1"
    assert record["stop"] == ["\nQuestion:", "\nAnswer:"]
    assert record["max_tokens"] == 24 and record["repeat_penalty"] == 1.1


@pytest.mark.slow
def test_embedded_same_seed_reproduces_and_model_loads_once():
    first = EmbeddedBackend().generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[7])
    second = EmbeddedBackend().generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[7])
    assert first[0].text == second[0].text
    path = str(packaged_model_path())
    assert model_load(path=path) is model_load(path=path)


@pytest.mark.slow
def test_embedded_prompt_longer_than_context_is_a_clear_error():
    turns = [{"role": "user", "content": "word " * 20_000}]
    with pytest.raises(GenerationFailed, match="does not fit the model's context"):
        EmbeddedBackend().generate(turns=turns, sampling=SHORT, seeds=[1])


def test_embedded_missing_model_file_is_a_clear_error(tmp_path):
    backend = EmbeddedBackend(model_path=str(tmp_path / "nope.gguf"))
    with pytest.raises(GenerationFailed, match="does not exist"):
        backend.generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])


# --- OpenAI-compatible against llama.cpp's server ----------------------------------------------


@pytest.mark.slow
def test_http_backend_against_llama_cpp_server(llama_server):
    backend = OpenAICompatibleBackend(
        base_url=llama_server, model="gemma", api_key=API_KEY, allowed_hosts=LOOPBACK
    )
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=24, stop=("USER:",))
    completions = backend.generate(turns=OPEN_QUESTION, sampling=sampling, seeds=[5, 6, 7])

    assert [c.seed for c in completions] == [5, 6, 7]
    for completion in completions:
        assert completion.text.strip()
        assert completion.prompt_tokens and completion.prompt_tokens > 0
        assert 1 <= completion.completion_tokens <= 24
        assert completion.seconds > 0
    assert backend.sampling_record(sampling=sampling)["stop"] == ["USER:"]


@pytest.mark.slow
def test_http_backend_wrong_key_is_clear_and_never_shows_the_key(llama_server, caplog):
    backend = OpenAICompatibleBackend(
        base_url=llama_server, model="gemma", api_key="sk-wrong-secret-1234", allowed_hosts=LOOPBACK
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(GenerationFailed) as raised:
        backend.generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])
    assert not isinstance(raised.value, GenerationUnavailable)
    assert "HTTP 401" in raised.value.message
    assert "sk-wrong-secret-1234" not in raised.value.message + caplog.text + repr(backend)


@pytest.mark.slow
def test_service_fills_a_prompt_through_llama_cpp_server(llama_server, project, make_prompts, settings):
    settings.GENERATION_ALLOWED_HOSTS = list(LOOPBACK)
    project.generation_backend = "openai"
    project.generation_base_url = llama_server
    project.generation_model = "gemma"
    project.generation_api_key = API_KEY
    project.max_tokens = 24
    project.temperature = 1.0
    project.stop_sequences = ["USER:"]
    project.save()
    [prompt] = make_prompts(project, 1)

    outcome = candidates_generate(prompt_id=prompt.pk)

    assert outcome.created == project.k and not outcome.error
    candidates = list(prompt.candidates.all())
    assert len({c.content_hash for c in candidates}) == project.k
    assert {c.backend for c in candidates} == {"openai"}
    assert all(c.model_name == "gemma" and c.seed and c.completion_tokens for c in candidates)
    assert all(API_KEY not in str(c.sampling_params) for c in candidates)


# --- OpenAI-compatible failure paths, on a server that fails on purpose ------------------------


def test_http_timeout_is_retried_then_unavailable(scripted_server):
    scripted_server.default = Reply(delay=1.0)
    backend = _fast_backend(scripted_server, read_timeout=0.2, max_attempts=2)
    with pytest.raises(GenerationUnavailable, match="timed out") as raised:
        backend.generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])
    assert "after 2 attempts" in raised.value.message
    assert len(scripted_server.requests) == 2


def test_http_5xx_is_retried_then_unavailable(scripted_server):
    scripted_server.default = Reply(status=503)
    with pytest.raises(GenerationUnavailable, match="HTTP 503"):
        _fast_backend(scripted_server).generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])
    assert len(scripted_server.requests) == 3


def test_http_passing_failures_are_ridden_out(scripted_server):
    scripted_server.script = [Reply(status=429, headers={"Retry-After": "0"}), Reply(status=502)]
    [completion] = _fast_backend(scripted_server).generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[9])
    assert completion.text == "Answer number 3."
    assert completion.completion_tokens == 3 and completion.seed == 9


def test_http_request_carries_sampling_settings_and_key(scripted_server):
    sampling = SamplingParams(temperature=0.3, top_p=0.5, max_tokens=12, stop=("###",))
    completions = _fast_backend(scripted_server).generate(
        turns=OPEN_QUESTION, sampling=sampling, seeds=[4, 5]
    )
    assert [c.seed for c in completions] == [4, 5]
    first = next(r for r in scripted_server.requests if r["json"]["seed"] == 4)
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert first["json"] == {
        "model": "scripted",
        "messages": OPEN_QUESTION,
        "temperature": 0.3,
        "top_p": 0.5,
        "max_tokens": 12,
        "seed": 4,
        "stop": ["###"],
    }
    assert sorted(r["json"]["seed"] for r in scripted_server.requests) == [4, 5]


def test_http_samples_are_requested_concurrently_and_returned_in_seed_order(scripted_server):
    scripted_server.default = Reply(delay=0.5)
    started = time.perf_counter()
    completions = _fast_backend(scripted_server).generate(
        turns=OPEN_QUESTION, sampling=SHORT, seeds=[1, 2, 3, 4]
    )
    assert time.perf_counter() - started < 1.5  # four at once, not 4 x 0.5 s one after another
    assert [c.seed for c in completions] == [1, 2, 3, 4]
    assert len({c.text for c in completions}) == 4


def test_http_4xx_is_a_clear_error_at_once_without_the_body(scripted_server, caplog):
    scripted_server.default = Reply(
        status=400, body=f'{{"error": "bad key {API_KEY}", "internal": "x9-leak"}}'
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(GenerationFailed) as raised:
        _fast_backend(scripted_server).generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])
    assert not isinstance(raised.value, GenerationUnavailable)
    assert "HTTP 400 Bad Request" in raised.value.message
    # Nothing the server wrote comes back: not the key it echoed, not the rest of its body.
    assert API_KEY not in raised.value.message + caplog.text
    assert "x9-leak" not in raised.value.message + caplog.text
    assert len(scripted_server.requests) == 1


def test_http_errors_never_show_credentials_written_into_the_url(scripted_server):
    scripted_server.default = Reply(status=503)
    url = scripted_server.url.replace("http://", "http://user:pw-in-url-9@")
    backend = OpenAICompatibleBackend(base_url=url, model="m", max_attempts=1, allowed_hosts=LOOPBACK)
    with pytest.raises(GenerationUnavailable) as raised:
        backend.generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])
    assert "pw-in-url-9" not in raised.value.message + repr(backend)
    assert scripted_server.url in raised.value.message


def test_http_404_hints_at_the_base_url(scripted_server):
    scripted_server.default = Reply(status=404)
    with pytest.raises(GenerationFailed, match="ends in /v1"):
        _fast_backend(scripted_server).generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])


def test_http_body_that_is_not_a_completion_is_a_clear_error(scripted_server):
    scripted_server.default = Reply(body='{"hello": "world"}')
    with pytest.raises(GenerationFailed, match="OpenAI-compatible"):
        _fast_backend(scripted_server).generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])


def test_http_connection_refused_is_unavailable():
    backend = OpenAICompatibleBackend(
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        model="m",
        max_attempts=2,
        backoff_seconds=0.01,
        allowed_hosts=LOOPBACK,
    )
    with pytest.raises(GenerationUnavailable, match="cannot connect"):
        backend.generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])


# --- Choosing a backend from a project ---------------------------------------------------------


def test_generation_backend_get_checks_the_project_settings(project):
    assert isinstance(generation_backend_get(project=project), EmbeddedBackend)
    project.generation_backend = "openai"
    with pytest.raises(GenerationFailed, match="no base URL"):
        generation_backend_get(project=project)
    project.generation_base_url = "http://127.0.0.1:1/v1"
    with pytest.raises(GenerationFailed, match="names no model"):
        generation_backend_get(project=project)
    project.generation_model = "m"
    project.generation_api_key = API_KEY
    backend = generation_backend_get(project=project)
    assert isinstance(backend, OpenAICompatibleBackend) and API_KEY not in repr(backend)


def test_generation_sampling_get_refuses_bad_stop_sequences(project):
    project.stop_sequences = ["ok", ""]
    with pytest.raises(GenerationFailed, match="stop sequences"):
        generation_sampling_get(project=project)
    project.stop_sequences = "###"
    with pytest.raises(GenerationFailed, match="stop sequences"):
        generation_sampling_get(project=project)
    project.stop_sequences = ["###"]
    assert generation_sampling_get(project=project).stop == ("###",)


def test_generation_backend_get_hands_the_settings_to_the_backend(project, settings):
    """The backends read no settings: the service passes each one in, read at call time."""
    settings.GENERATION_THREADS = 3
    embedded = generation_backend_get(project=project)
    assert isinstance(embedded, EmbeddedBackend) and embedded.threads == 3

    settings.GENERATION_HTTP_CONNECT_TIMEOUT = 1.5
    settings.GENERATION_HTTP_READ_TIMEOUT = 7.0
    settings.GENERATION_HTTP_MAX_ATTEMPTS = 2
    settings.GENERATION_HTTP_BACKOFF_SECONDS = 0.25
    settings.GENERATION_HTTP_CONCURRENCY = 6
    project.generation_backend = "openai"
    project.generation_base_url = "http://127.0.0.1:1/v1"
    project.generation_model = "m"
    http = generation_backend_get(project=project)
    assert isinstance(http, OpenAICompatibleBackend)
    assert (http.connect_timeout, http.read_timeout, http.max_attempts) == (1.5, 7.0, 2)
    assert (http.backoff_seconds, http.concurrency) == (0.25, 6)


def test_backends_default_to_the_documented_values_without_settings():
    http = OpenAICompatibleBackend(base_url="http://127.0.0.1:1/v1", model="m")
    assert (http.connect_timeout, http.read_timeout, http.max_attempts) == (5.0, 120.0, 3)
    assert (http.backoff_seconds, http.concurrency) == (1.0, 4)
    assert thread_count(configured=5) == 5
    assert 1 <= thread_count() <= 8
