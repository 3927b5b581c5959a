"""Export outputs of the matrix: the stable train/test split, split files, the dataset card beside
every background export, save_to_disk folders that `datasets.load_from_disk` reads, and the API's 400s
for options that do not fit the format."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from annotation.models import ExportJob, Membership
from annotation.models.projects import Role
from annotation.services.exports import export_job_create, export_job_run
from tests.annotation.export_data import ranked_prompt
from tests.annotation.test_exports_matrix import AGREE, SWAP, rows


@pytest.fixture
def export_dir(tmp_path):
    with override_settings(EXPORT_DIR=tmp_path / "exports"):
        yield tmp_path / "exports"


@pytest.fixture
def many(project, labeler, other_labeler):
    """40 prompts ranked twice; the project's card fields filled in."""
    for index in range(40):
        ranked_prompt(project, index, [labeler, other_labeler], [AGREE, SWAP if index % 2 else AGREE])
    project.dataset_license = "cc-by-4.0"
    project.dataset_source = "Prompts written by the test suite; answers from gemma-test."
    project.save(update_fields=["dataset_license", "dataset_source"])
    return project


@pytest.fixture
def project_admin(project, django_user_model, password):
    user = django_user_model.objects.create_user("carol", "carol@example.com", password)
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return user


def sides(records) -> dict[int, str]:
    found: dict[int, str] = {}
    for record in records:
        assert (
            found.setdefault(record["prompt_id"], record["split"]) == record["split"]
        )  # one side per prompt
    return found


def test_split_by_prompt_is_stable_across_exports_formats_and_added_data(many, labeler, other_labeler):
    first = sides(rows(many, "pairs", {"test_fraction": 0.25}))
    assert first == sides(rows(many, "pairs", {"test_fraction": 0.25}))
    assert first == sides(rows(many, "kto", {"test_fraction": 0.25}))
    assert first == {k: v for k, v in sides(rows(many, "prompt_only", {"test_fraction": 0.25})).items()}
    assert 4 <= list(first.values()).count("test") <= 18  # about a quarter of 40
    for index in range(40, 60):
        ranked_prompt(many, index, [labeler, other_labeler], [AGREE, AGREE])
    grown = sides(rows(many, "pairs", {"test_fraction": 0.25}))
    assert {k: grown[k] for k in first} == first
    # A larger share only moves prompts from train to test.
    larger = sides(rows(many, "pairs", {"test_fraction": 0.4}))
    assert all(larger[k] == "test" for k, side in grown.items() if side == "test")
    assert "split" not in rows(many, "pairs")[0]


@pytest.mark.parametrize(
    "export_format,filters,message",
    [
        ("kto", {"tie_policy": "keep"}, "tie_policy"),
        ("kto", {"margin": True}, "margin"),
        ("sft", {"pair_policy": "adjacent"}, "pair_policy"),
        ("pairs", {"kto_from": "ratings"}, "kto_from"),
        ("kto", {"desirable_rating": 6}, "desirable_rating"),
        ("kto", {"kto_from": "ratings", "desirable_rating": 3, "undesirable_rating": 4}, "desirable_rating"),
        ("prompt_only", {"min_agreement": 0.5}, "min_agreement"),
        ("pairs", {"split_output": "files"}, "split_output"),
        ("pairs", {"test_fraction": 0.2, "split_output": "files"}, "split_output"),
        ("pairs", {"test_fraction": 0.9}, "test_fraction"),
    ],
)
def test_stream_refuses_options_that_do_not_fit(
    project, project_admin, api_client, export_format, filters, message
):
    api_client.force_authenticate(project_admin)
    query = {"export_format": export_format, **{k: str(v).lower() for k, v in filters.items()}}
    response = api_client.get(f"/api/projects/{project.pk}/exports/stream", query)
    assert response.status_code == 400, response.content
    assert message in json.dumps(response.json()["error"])


def test_hf_dataset_is_refused_as_a_stream_but_counted(project, project_admin, api_client):
    api_client.force_authenticate(project_admin)
    base = f"/api/projects/{project.pk}/exports"
    assert (
        api_client.get(f"{base}/stream", {"export_format": "pairs", "file_format": "hf_dataset"}).status_code
        == 400
    )
    counted = api_client.get(f"{base}/count", {"export_format": "kto", "file_format": "hf_dataset"})
    assert counted.status_code == 200 and counted.json()["row_kind"] == "kto"


def _job(project, export_format, file_format, filters):
    job = export_job_create(
        project=project,
        requested_by=None,
        export_format=export_format,
        file_format=file_format,
        filters=filters,
    )
    job = export_job_run(job_id=job.pk)
    assert job.status == "succeeded", job.error
    return job


def test_job_writes_a_dataset_card_served_beside_the_file(many, project_admin, api_client, export_dir):
    job = _job(many, "pairs", "jsonl", {"test_fraction": 0.25, "min_agreement": 0.5})
    api_client.force_authenticate(project_admin)
    detail = api_client.get(f"/api/exports/{job.pk}/").json()
    card = b"".join(api_client.get(detail["card_url"]).streaming_content).decode()
    header, body = card.split("\n---\n", 1)
    assert header.startswith("---\nlicense: cc-by-4.0\n")
    assert "task_categories:\n- text-generation" in header and "- preference" in header
    assert (
        f'configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: "export-{job.pk}-pairs.jsonl"'
        in header
    )
    written = [
        json.loads(line)
        for line in b"".join(api_client.get(detail["download_url"]).streaming_content).splitlines()
    ]
    train = [r for r in written if r["split"] == "train"]
    test = [r for r in written if r["split"] == "test"]
    assert f"| train | {len(train)} | {len({r['prompt_id'] for r in train})} |" in body
    assert f"| test | {len(test)} | {len({r['prompt_id'] for r in test})} |" in body
    assert (
        "Pairwise agreement between labelers who ranked the same prompt: 91.7%" in body
    )  # 11 of 12 pairs, every other prompt
    assert "- `min_agreement`: `0.5`" in body and "- `test_fraction`: `0.25`" in body
    assert f"The latest row was made at {max(r['created_at'] for r in written)}" in body
    assert "Prompts written by the test suite; answers from gemma-test." in body


def test_job_split_files_are_a_zip_of_train_test_and_card(many, project_admin, api_client, export_dir):
    job = _job(many, "kto_conversational", "jsonl", {"test_fraction": 0.25, "split_output": "files"})
    api_client.force_authenticate(project_admin)
    response = api_client.get(f"/api/exports/{job.pk}/download")
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["README.md", "test.jsonl", "train.jsonl"]
    expected = rows(many, "kto_conversational", {"test_fraction": 0.25})
    for split in ("train", "test"):
        got = [json.loads(line) for line in archive.read(f"{split}.jsonl").splitlines()]
        assert got == [{k: v for k, v in r.items() if k != "split"} for r in expected if r["split"] == split]
    assert '  - split: test\n    path: "test.jsonl"' in archive.read("README.md").decode()


@pytest.mark.parametrize("filters", [{}, {"test_fraction": 0.25, "margin": True}], ids=["one", "split"])
def test_hf_dataset_loads_with_load_from_disk(many, export_dir, tmp_path, filters):
    import datasets

    job = _job(many, "pairs_conversational", "hf_dataset", filters)
    with tarfile.open(job.file_path) as archive:
        archive.extractall(tmp_path / "out", filter="data")
    folder = tmp_path / "out" / f"export-{job.pk}-pairs_conversational"
    loaded = datasets.load_from_disk(str(folder))
    expected = rows(many, "pairs_conversational", filters)
    assert sorted(loaded) == (["test", "train"] if filters else ["train"])
    for split in loaded:
        want = [
            {k: v for k, v in r.items() if k != "split"} for r in expected if r.get("split", "train") == split
        ]
        assert loaded[split].to_list() == want
    assert (folder / "README.md").read_text().startswith("---\nlicense: cc-by-4.0\n")


def test_dashboard_form_sends_the_options(many, project_admin, client, export_dir):
    client.force_login(project_admin)
    page = client.get(f"/dashboard/projects/{many.pk}/exports/")
    for name in ("pair_policy", "tie_policy", "margin", "kto_from", "test_fraction", "split_output"):
        assert f'name="{name}"'.encode() in page.content
    assert b'value="kto"' in page.content and b'value="hf_dataset"' in page.content
    response = client.post(
        f"/dashboard/projects/{many.pk}/exports/start",
        {
            "export_format": "pairs",
            "file_format": "jsonl",
            "pair_policy": "adjacent",
            "margin": "on",
            "test_fraction": "0.2",
        },
    )
    assert response.status_code == 302 and "pair_policy=adjacent" in response["Location"]
    job = ExportJob.objects.get()
    assert job.filters == {"pair_policy": "adjacent", "margin": True, "test_fraction": 0.2}
    refused = client.post(
        f"/dashboard/projects/{many.pk}/exports/start", {"export_format": "kto", "tie_policy": "keep"}
    )
    assert refused.status_code == 400 and b"tie_policy does not apply to kto exports" in refused.content
    streamed = client.get(
        f"/dashboard/projects/{many.pk}/exports/download",
        {"export_format": "pairs", "file_format": "hf_dataset"},
    )
    assert streamed.status_code == 400 and ExportJob.objects.count() == 1


def test_command_writes_split_files_and_hf_dataset_with_cards(many, tmp_path):
    call_command(
        "export_dataset", "--project", str(many.pk), "--format", "kto", "--kto-from", "ratings",
        "--desirable-rating", "6", "--test-fraction", "0.25", "--split-output", "files",
        "-o", str(tmp_path / "kto.zip"),
    )  # fmt: skip
    archive = zipfile.ZipFile(tmp_path / "kto.zip")
    expected = rows(many, "kto", {"kto_from": "ratings", "desirable_rating": 6, "test_fraction": 0.25})
    train = [json.loads(line) for line in archive.read("train.jsonl").splitlines()]
    assert train == [{k: v for k, v in r.items() if k != "split"} for r in expected if r["split"] == "train"]
    assert (tmp_path / "kto.README.md").read_text().startswith("---\nlicense: cc-by-4.0\n")
    call_command(
        "export_dataset",
        "--project",
        str(many.pk),
        "--format",
        "prompt_only",
        "-o",
        str(tmp_path / "p.hf_dataset.tar"),
    )
    with tarfile.open(tmp_path / "p.hf_dataset.tar") as archive_tar:
        assert archive_tar.getnames()[0] == "p"
    with pytest.raises(CommandError, match="tie_policy does not apply to kto"):
        call_command("export_dataset", "--project", str(many.pk), "--format", "kto", "--tie-policy", "keep")
