"""The Python client (client/rlhf_client) against the real app: a live server, an admin's API token,
data made by the real services, Celery tasks run eagerly in the server's thread (imports, exports and
a real training run of the tiny test backbone), and the README's example run as written."""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from rest_framework.authtoken.models import Token
from rest_framework.throttling import ScopedRateThrottle
from rlhf_client import ApiError, Client, JobFailed, WaitTimeout

from annotation.models import Prompt
from config.celery import app as celery_app
from rewards.models import RewardModel
from rewards.services.runs import reward_model_heartbeat, reward_model_start
from tests.annotation.export_data import demonstration_make, ranked_prompt
from tests.rewards.conftest import rankings_make, tiny_backbone  # noqa: F401 - a fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def server_dirs(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_DIR = tmp_path / "exports"
    settings.REWARD_MODEL_ARTIFACT_DIR = tmp_path / "reward_models"


@pytest.fixture
def token(admin_user) -> str:
    return Token.objects.create(user=admin_user).key


@pytest.fixture
def platform(live_server, token, eager_celery, server_dirs) -> Client:
    """The client under test (not named `client`: that is pytest-django's Django test client)."""
    return Client(live_server.url, token=token, poll_interval=0.05)


@pytest.fixture
def trainable(project, labeler, tiny_backbone):  # noqa: F811 - the fixture imported above
    """The project with 12 ranked prompts (60 comparisons) and the tiny backbone to train on."""
    project.reward_model_config = {"backbone": tiny_backbone, "epochs": 1, "max_length": 64}
    project.save(update_fields=["reward_model_config"])
    rankings_make(project, prompts=12, labeler=labeler)
    return project


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _api_stream(live_server, token: str, project_id: int, **params: str) -> requests.Response:
    """The API's own stream, fetched without the client: what the client's rows must equal."""
    response = requests.get(
        f"{live_server.url}/api/projects/{project_id}/exports/stream",
        params=params,
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def test_prompts_import_waits_for_the_job_and_fails_with_the_bad_lines(platform, project, tmp_path):
    path = _jsonl(
        tmp_path / "prompts.jsonl",
        [
            {"prompt": "What is a reward model?"},
            {"messages": [{"role": "user", "content": "Explain RLHF in one line."}]},
            {"prompt": "What is a reward model?"},
        ],
    )
    job = platform.prompts_import(project_id=project.pk, path=path, source="client-test", progress=True)
    assert (job["status"], job["imported"], job["duplicates"], job["rows_read"]) == ("succeeded", 2, 1, 3)
    stored = Prompt.objects.filter(project=project, source="client-test")
    assert sorted(prompt.turns[-1]["content"] for prompt in stored) == [
        "Explain RLHF in one line.",
        "What is a reward model?",
    ]

    bad = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "Fine?"}, {"nothing": "here"}])
    with pytest.raises(JobFailed) as failed:
        platform.prompts_import(project_id=project.pk, path=bad)
    assert failed.value.job["status"] == "failed" and [e["line"] for e in failed.value.job["errors"]] == [2]
    assert not Prompt.objects.filter(project=project, source="bad.jsonl").exists()  # all or nothing
    assert platform.import_get(import_id=failed.value.job["id"])["error_count"] == 1


def test_stats_read_the_quality_api(platform, project, labeler, other_labeler):
    # Two prompts ranked alike by both labelers, one with a swap of the top two: 17 of 18 pairs agree.
    for index, second_order in enumerate([[[0], [1], [2], [3]], [[0], [1], [2], [3]], [[1], [0], [2], [3]]]):
        ranked_prompt(project, index, [labeler, other_labeler], [[[0], [1], [2], [3]], second_order])

    summary = platform.quality_summary(project_id=project.pk)
    assert (summary["prompts"], summary["rankings"], summary["pairs_compared"]) == (3, 6, 18)
    assert summary["agreement"] == pytest.approx(17 / 18)
    assert sorted(row["username"] for row in platform.labeler_stats(project_id=project.pk)) == [
        "alice",
        "bob",
    ]
    assert "rankings" in json.dumps(platform.queue_depth(project_id=project.pk))
    assert platform.throughput(project_id=project.pk, days=7)["days"] == 7


def test_exports_stream_into_a_dataset_and_files_as_the_api_streams_them(
    platform, live_server, token, project, labeler, tmp_path
):
    rankings_make(project, prompts=3, labeler=labeler)  # 3 rankings of 4 answers: 15 pairs
    demonstration_make(project.prompts.first(), labeler, "A demonstration for the SFT file.")
    for export_format in ("pairs", "pairs_conversational"):
        expected = [
            json.loads(line)
            for line in _api_stream(
                live_server, token, project.pk, export_format=export_format, file_format="jsonl"
            ).text.splitlines()
        ]
        assert len(expected) == 15
        dataset = platform.export_dataset(project_id=project.pk, export_format=export_format, progress=True)
        assert dataset.num_rows == 15 and list(dataset) == expected

    # The stream into a file, byte for byte, and as Parquet.
    direct = platform.export_file(project_id=project.pk, export_format="sft", path=tmp_path / "sft.jsonl")
    assert direct.read_bytes() == _api_stream(live_server, token, project.pk, export_format="sft").content
    parquet = platform.export_file(
        project_id=project.pk,
        export_format="pairs",
        file_format="parquet",
        path=tmp_path / "pairs.parquet",
        progress=True,
    )
    assert pq.read_table(parquet).to_pylist() == list(
        platform.export_rows(project_id=project.pk, export_format="pairs")
    )
    assert not list(tmp_path.glob(".*.part"))

    # A background job, waited on, then downloaded; its filters travel as the API's.
    job = platform.export_start(
        project_id=project.pk,
        export_format="rankings",
        file_format="jsonl.gz",
        filters={"exclude_flagged": True},
        wait=True,
        progress=True,
    )
    assert (job["status"], job["rows_written"], job["filters"]) == ("succeeded", 3, {"exclude_flagged": True})
    saved = platform.export_download(job_id=job["id"], path=tmp_path / "rankings.jsonl.gz", progress=True)
    rankings = [json.loads(line) for line in gzip.decompress(saved.read_bytes()).splitlines()]
    assert [row["prompt_id"] for row in rankings] == sorted(
        row["prompt_id"]
        for row in platform.export_rows(
            project_id=project.pk, export_format="rankings", filters={"labelers": [labeler.pk]}
        )
    )


def test_retrain_trains_a_version_and_versions_are_listed_and_activated(platform, trainable):
    project = trainable
    first = platform.reward_model_retrain(project_id=project.pk, wait=True, progress=True)
    assert (first["status"], first["version"], first["is_active"], first["progress"]) == (
        "succeeded",
        1,
        True,
        1.0,
    )
    # The project's frozen evaluation set, fixed at this first training, is never trained on.
    from annotation.models import Comparison
    from rewards.selectors.reward_models import evaluation_prompt_ids

    held_out = Comparison.objects.filter(prompt_id__in=evaluation_prompt_ids(project=project)).count()
    assert first["comparisons_seen"] == 60 - held_out and first["validation_accuracy"] is not None
    second = platform.reward_model_retrain(project_id=project.pk, wait=True)
    assert second["version"] == 2 and second["is_active"]

    versions = platform.reward_models_list(project_id=project.pk, versions_only=True)
    assert [(run["version"], run["is_active"]) for run in versions] == [(2, True), (1, False)]
    activated = platform.reward_model_activate(project_id=project.pk, reward_model_id=first["id"])
    assert activated["is_active"] and activated["version"] == 1
    assert RewardModel.objects.get(project=project, is_active=True).pk == first["id"]


def test_a_wait_follows_a_run_in_flight_until_it_ends(platform, project, monkeypatch):
    import rewards.services.runs as runs

    # No worker here: the run stays queued (and no message is left on the broker for a later test);
    # rewards' own services then move it as a training worker would.
    monkeypatch.setattr(runs, "_send_after_commit", lambda reward_model: None)
    queued = platform.reward_model_retrain(project_id=project.pk)
    started = reward_model_start(reward_model_id=queued["id"])
    assert started is not None
    reward_model_heartbeat(reward_model_id=queued["id"], progress=0.5, message="epoch 1/2")

    with pytest.raises(WaitTimeout) as timed_out:
        platform.reward_model_wait(project_id=project.pk, reward_model_id=queued["id"], timeout=0.3)
    assert (timed_out.value.job["status"], timed_out.value.job["progress"]) == ("running", 0.5)
    assert timed_out.value.job["progress_message"] == "epoch 1/2"

    platform.reward_model_cancel(project_id=project.pk, reward_model_id=queued["id"])
    with pytest.raises(JobFailed) as failed:
        platform.reward_model_wait(project_id=project.pk, reward_model_id=queued["id"], progress=True)
    assert failed.value.job["status"] == "cancelled"


def test_api_errors_raise_the_typed_exception(platform, live_server, project, monkeypatch):
    import rewards.services.runs as runs

    monkeypatch.setattr(runs, "_send_after_commit", lambda reward_model: None)
    queued = platform.reward_model_retrain(project_id=project.pk)
    with pytest.raises(ApiError) as busy:
        platform.reward_model_retrain(project_id=project.pk)
    error = busy.value
    assert (error.status, error.code, error.details) == (
        409,
        "run_in_progress",
        {"reward_model_id": queued["id"], "status": "queued"},
    )
    assert "already queued" in error.message

    with pytest.raises(ApiError) as missing:
        platform.export_get(job_id=987654)
    assert (missing.value.status, missing.value.code) == (404, "export_not_found")
    with pytest.raises(ApiError) as invalid:
        list(platform.export_rows(project_id=project.pk, export_format="no-such-format"))
    assert invalid.value.status == 400 and "export_format" in invalid.value.details
    with pytest.raises(ApiError) as unauthorised:
        Client(live_server.url, token="not-a-token").quality_summary(project_id=project.pk)
    assert unauthorised.value.status == 401


def test_a_throttled_request_is_retried_after_its_retry_after(
    platform, live_server, token, project, monkeypatch
):
    import rewards.services.runs as runs

    monkeypatch.setattr(runs, "_send_after_commit", lambda reward_model: None)
    # Retrains throttled to one a second, so the second one answers 429 with Retry-After: 1.
    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"retrain": "1/second", "export_start": "1/second"}
    )
    platform.reward_model_retrain(project_id=project.pk)
    with pytest.raises(ApiError) as throttled:
        Client(live_server.url, token=token, max_retries=0).reward_model_retrain(project_id=project.pk)
    assert throttled.value.status == 429 and throttled.value.code == "throttled"

    began = time.monotonic()
    with pytest.raises(ApiError) as after_retry:
        platform.reward_model_retrain(project_id=project.pk)
    assert after_retry.value.status == 409  # waited out the throttle, then refused: a run is queued
    assert time.monotonic() - began >= 0.5


@pytest.mark.django_db(transaction=True, reset_sequences=True)  # the example's project_id=1
def test_the_readme_example_works_as_written(
    live_server, token, trainable, eager_celery, server_dirs, tmp_path, monkeypatch
):
    section = README.read_text().split("## Python client", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "README's Python client section has no python block"
    lines = code.group(1).strip().splitlines()
    assert len(lines) == 5
    source = code.group(1).replace("http://localhost:8000", live_server.url).replace("YOUR-API-TOKEN", token)
    assert source.count(live_server.url) == 1 and source.count(token) == 1  # only URL and token replaced

    assert trainable.pk == 1
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path / "prompts.jsonl", [{"prompt": "A prompt from the README's file."}])
    namespace: dict = {}
    exec(compile(source, str(README), "exec"), namespace)
    assert namespace["dataset"].num_rows == 60
    assert namespace["run"]["status"] == "succeeded" and namespace["run"]["version"] == 1
    assert Prompt.objects.filter(project=trainable, source="prompts.jsonl").count() == 1
