"""Exports stream: Python memory stays flat when the row count grows tenfold, and an export made through
the app loads with `datasets.load_dataset`."""

from __future__ import annotations

import gc
import json
import tracemalloc

import pytest

from annotation.exports import sources
from annotation.models import Candidate, Comparison, Membership, Project
from annotation.models.projects import Role
from annotation.services.exports import export_request_validate, export_stream
from annotation.services.prompts import prompt_create
from annotation.services.rankings import ranking_record
from tests.annotation.export_data import candidate_make, demonstration_make, ranked_prompt

K = 9  # 36 pairs per ranking, 72 per prompt with two labelers


def fill(project, prompts: int, labelers) -> None:
    for index in range(prompts):
        prompt = prompt_create(
            project=project, turns=[{"role": "user", "content": f"Question {index} " * 20}]
        )
        ids = [candidate_make(prompt, f"Answer {index}.{n} " * 30).pk for n in range(K)]
        ranking_record(prompt=prompt, candidate_ids=ids, order=[[c] for c in ids], labeler=labelers[0])
        ranking_record(
            prompt=prompt, candidate_ids=ids, order=[[c] for c in reversed(ids)], labeler=labelers[1]
        )


def peak_bytes(project, export_format: str, file_format: str, filters=None) -> tuple[int, int]:
    request = export_request_validate(
        project=project, export_format=export_format, file_format=file_format, filters=filters
    )
    gc.collect()
    tracemalloc.start()
    records = [0]

    def count(written: int, _read: int) -> None:
        records[0] = written

    try:
        for _chunk in export_stream(request=request, on_progress=count):
            pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, records[0]


@pytest.fixture
def small_batches(monkeypatch):
    # Batches far smaller than the data, so both sizes span several batches.
    monkeypatch.setattr(sources, "BATCH_ROWS", 100)
    monkeypatch.setattr(sources, "ITERATOR_CHUNK", 100)


@pytest.mark.parametrize(
    ("export_format", "file_format", "filters"),
    [
        ("pairs", "jsonl", None),
        ("pairs_conversational", "parquet", None),
        ("pairs", "jsonl.gz", {"min_agreement": 0.0, "exclude_flagged": True}),
        ("rankings", "jsonl", None),
    ],
)
def test_memory_stays_flat_when_rows_grow_tenfold(
    db, small_batches, labeler, other_labeler, export_format, file_format, filters
):
    small, large = Project.objects.create(name="small"), Project.objects.create(name="large")
    fill(small, 12, [labeler, other_labeler])
    fill(large, 120, [labeler, other_labeler])
    assert Comparison.objects.filter(prompt__project=large).count() == 120 * 72
    # Warm caches (imports, query compilation) so the first measurement is not inflated.
    peak_bytes(small, export_format, file_format, filters)
    small_peak, small_rows = peak_bytes(small, export_format, file_format, filters)
    large_peak, large_rows = peak_bytes(large, export_format, file_format, filters)
    assert large_rows == 10 * small_rows > 0
    # Ten times the rows; the peak may wobble (allocator, per-batch sizes) but must not scale.
    assert large_peak < 1.5 * small_peak + 256 * 1024, (small_peak, large_peak)
    assert large_peak < 6 * 1024 * 1024


@pytest.fixture
def app_data(project, labeler, other_labeler):
    p0, _ = ranked_prompt(project, 0, [labeler, other_labeler], [[[0], [1], [2], [3]], [[1], [0], [2], [3]]])
    p1, _ = ranked_prompt(project, 1, [labeler], [[[2], [0, 1], [3]]])
    demonstration_make(p0, labeler, "A demonstration long enough to train on.")
    demonstration_make(p1, other_labeler, "Another demonstration long enough to train on.")
    Membership.objects.create(
        project=project,
        user=type(labeler).objects.create_user("root", "root@example.com", "x"),
        role=Role.ADMIN,
    )
    return project


@pytest.mark.parametrize(
    ("export_format", "columns", "rows"),
    [
        ("pairs", {"prompt", "chosen", "rejected"}, 17),
        ("pairs_conversational", {"prompt", "chosen", "rejected"}, 17),
        ("hh_rlhf", {"chosen", "rejected"}, 17),
        ("sft", {"prompt", "completion"}, 2),
        ("sft_conversational", {"prompt", "completion"}, 2),
        ("sft_messages", {"messages"}, 2),
        ("rankings", {"prompt", "candidates", "rankings", "consensus_order"}, 2),
    ],
)
def test_load_dataset_round_trip_through_the_api(
    app_data, api_client, tmp_path, export_format, columns, rows
):
    datasets = pytest.importorskip("datasets")
    from trl.data_utils import is_conversational

    admin = type(app_data.memberships.first().user).objects.get(username="root")
    api_client.force_authenticate(admin)
    response = api_client.get(
        f"/api/projects/{app_data.pk}/exports/stream",
        {"export_format": export_format, "file_format": "jsonl"},
    )
    assert response.status_code == 200
    path = tmp_path / f"{export_format}.jsonl"
    path.write_bytes(b"".join(response.streaming_content))
    dataset = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert len(dataset) == rows
    assert columns <= set(dataset.column_names)
    first = dataset[0]
    expected = json.loads(path.read_text().splitlines()[0])
    for column in columns:
        assert first[column] == expected[column]
    # TRL decides plain vs conversational from the row itself; ours must say what they are.
    if export_format in {"pairs_conversational", "sft_conversational", "sft_messages"}:
        assert is_conversational(first)
    elif export_format in {"pairs", "hh_rlhf", "sft"}:
        assert not is_conversational(first)


def test_parquet_loads_with_datasets(app_data, tmp_path):
    datasets = pytest.importorskip("datasets")
    request = export_request_validate(
        project=app_data, export_format="pairs_conversational", file_format="parquet", filters={}
    )
    path = tmp_path / "pairs.parquet"
    path.write_bytes(b"".join(export_stream(request=request)))
    dataset = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert len(dataset) == 17
    assert dataset[0]["chosen"][0]["role"] == "assistant"
    assert Candidate.objects.filter(pk=dataset[0]["chosen_id"]).exists()
