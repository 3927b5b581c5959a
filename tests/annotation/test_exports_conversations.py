"""Conversation exports on a tree made through the converse services (tests/annotation/conversation_data.py):
TRL conversational pairs per turn with the edit choices, and both conversation formats (the trees' shape:
test_exports_trees.py) through the stream, the count, a background job with its card, the command and
`datasets`; the pairs train in TRL's RewardTrainer."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.exports.split import split_side
from annotation.models import Membership
from annotation.models.exports import ExportStatus
from annotation.models.projects import Role
from annotation.services.exports import (
    export_job_create,
    export_job_run,
    export_request_validate,
    export_stream,
)
from config.errors import ValidationFailed
from tests.annotation.conversation_data import (
    ALL_PAIRS,
    EDITED,
    OWN_REPLY,
    SANDWICH,
    conversation_world,
    counted,
    export,
)


@pytest.fixture(autouse=True)
def quick_passwords(settings):
    """The fixtures' users need no strong hash; PBKDF2 would cost a CPU-second or so a user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def carol(django_user_model, password):
    return django_user_model.objects.create_user("carol", "carol@example.com", password)


@pytest.fixture
def world(project, labeler, other_labeler, carol):
    return conversation_world(project, labeler, other_labeler, carol)


@pytest.fixture
def project_admin(project, django_user_model, password):
    user = django_user_model.objects.create_user("dora", "dora@example.com", password)
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return user


def pair(_world, row) -> tuple[str, str]:
    return row["chosen"][0]["content"], row["rejected"][0]["content"]


# --- Conversational pairs ------------------------------------------------------------------------


def test_pairs_hold_each_turns_whole_history_in_trls_conversational_format(world):
    from trl.data_utils import is_conversational

    rows = export(world.project, "conversation_pairs")
    assert len(rows) == ALL_PAIRS == counted(world.project, "conversation_pairs", {})
    for row in rows:
        assert is_conversational(row)
        assert row["prompt"][-1]["role"] == "user"
        assert [message["role"] for message in row["chosen"] + row["rejected"]] == ["assistant", "assistant"]
    p1, p2, p3 = (world.turns[name] for name in ("P1", "P2", "P3"))
    by_prompt = {
        prompt_id: [r for r in rows if r["prompt_id"] == prompt_id]
        for prompt_id in {r["prompt_id"] for r in rows}
    }
    # The third turn's prompt: the edit alice continued with, her own reply, then her question.
    (drink,) = by_prompt[p2.pk]
    assert drink["prompt"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Plan a picnic for four."},
        {"role": "assistant", "content": EDITED},
        {"role": "user", "content": "And for dessert?"},
        {"role": "assistant", "content": OWN_REPLY},
        {"role": "user", "content": "Anything to drink?"},
    ]
    assert drink["chosen"] == [{"role": "assistant", "content": "Lemonade."}]
    assert (drink["turn"], drink["root_prompt_id"], drink["parent_prompt_id"]) == (3, world.root.pk, p1.pk)
    assert {(r["turn"], r["parent_prompt_id"]) for r in by_prompt[p1.pk]} == {(2, world.root.pk)}
    assert {(r["turn"], r["parent_prompt_id"]) for r in by_prompt[p3.pk]} == {(2, world.root.pk)}
    # "None acceptable" is the ranking's: alice's dessert turn; its order still gives its pairs.
    assert {r["none_acceptable"] for r in by_prompt[p1.pk]} == {True}
    assert [pair(world, r) for r in by_prompt[p1.pk]] == [("Ice cream.", "Cake."), ("Ice cream.", "Cookies.")]
    assert not any(r["none_acceptable"] for r in rows if r["prompt_id"] != p1.pk)
    # The edit is marked as one, and as an edit of the answer it beats in alice's ranking.
    (edit_row,) = [r for r in rows if pair(world, r) == (EDITED, SANDWICH)]
    assert edit_row["chosen_source"] == "edit" and edit_row["rejected_source"] == "model"
    assert edit_row["chosen_edited_from"] == world.id(SANDWICH) and edit_row["edit_of_rejected"] is True
    assert sum(r["edit_of_rejected"] for r in rows) == 1  # carol ranks the edit below its original
    # A prompt never continued is a one-turn conversation of its own: any project can use the format.
    plain = by_prompt[world.plain.pk]
    assert len(plain) == 6 and {(r["turn"], r["root_prompt_id"], r["parent_prompt_id"]) for r in plain} == {
        (1, world.plain.pk, None)
    }
    # The same pairs as the plain conversational format, with the conversation columns beside them.
    plain_format = export(world.project, "pairs_conversational")
    assert [(r["chosen_id"], r["rejected_id"], r["prompt"]) for r in plain_format] == [
        (r["chosen_id"], r["rejected_id"], r["prompt"]) for r in rows
    ]


def test_edit_pairs_choose_all_none_or_the_edited_chosen_rejected_chain(world):
    project = world.project
    without = export(project, "conversation_pairs", {"edit_pairs": "without_edits"})
    # alice's root ranking loses the edit's 3 pairs, carol's its 4.
    assert (
        len(without)
        == ALL_PAIRS - 7
        == counted(project, "conversation_pairs", {"edit_pairs": "without_edits"})
    )
    assert all("edit" not in (r["chosen_source"], r["rejected_source"]) for r in without)
    chain = export(project, "conversation_pairs", {"edit_pairs": "edited_chosen_rejected"})
    # Only alice's ranking puts the edit above its original: edited > chosen, chosen > each below.
    assert [pair(world, r) for r in chain] == [
        (EDITED, SANDWICH),
        (SANDWICH, "Pizza."),
        (SANDWICH, "Nothing."),
    ]
    assert [r["edit_of_rejected"] for r in chain] == [True, False, False]
    assert counted(project, "conversation_pairs", {"edit_pairs": "edited_chosen_rejected"}) == 3
    # With a pair policy the chain keeps what both allow: adjacent groups only drops chosen > Nothing.
    adjacent = export(
        project, "conversation_pairs", {"edit_pairs": "edited_chosen_rejected", "pair_policy": "adjacent"}
    )
    assert [pair(world, r) for r in adjacent] == [(EDITED, SANDWICH), (SANDWICH, "Pizza.")]
    assert "margin" in export(project, "conversation_pairs", {"margin": True})[0]
    # Rankings marked "none acceptable" are kept unless asked: alice's dessert turn gives 2 pairs.
    kept = export(project, "conversation_pairs", {"exclude_none_acceptable": True})
    assert len(kept) == ALL_PAIRS - 2 and not any(r["none_acceptable"] for r in kept)


def test_command_writes_the_chain(world, tmp_path):
    path = tmp_path / "chain.jsonl"
    call_command(
        "export_dataset",
        "--project",
        str(world.project.pk),
        "--format",
        "conversation_pairs",
        "--edit-pairs",
        "edited_chosen_rejected",
        "-o",
        str(path),
        stderr=io.StringIO(),
    )
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [pair(world, r) for r in rows] == [
        (EDITED, SANDWICH),
        (SANDWICH, "Pizza."),
        (SANDWICH, "Nothing."),
    ]


@pytest.mark.parametrize(
    ("export_format", "filters", "code"),
    [
        ("pairs", {"edit_pairs": "without_edits"}, "invalid_option"),  # read by conversation_pairs only
        ("conversation_pairs", {"edit_pairs": "some"}, "invalid_option"),
        (
            "conversation_pairs",
            {"edit_pairs": "edited_chosen_rejected", "consensus_only": True},
            "invalid_option",
        ),
        ("oasst_trees", {"exclude_flagged": True}, "invalid_filter"),
        ("oasst_trees", {"min_agreement": 0.5}, "invalid_filter"),
        ("oasst_trees", {"pair_policy": "adjacent"}, "invalid_option"),
    ],
)
def test_options_that_do_not_fit_are_refused(project, export_format, filters, code):
    with pytest.raises(ValidationFailed) as error:
        export_request_validate(
            project=project, export_format=export_format, file_format="jsonl", filters=filters
        )
    assert error.value.code == code


def test_a_test_split_keeps_each_conversation_on_one_side(world):
    rows = export(world.project, "conversation_pairs", {"test_fraction": 0.5})
    sides: dict[int, set[str]] = {}
    for row in rows:
        sides.setdefault(row["root_prompt_id"], set()).add(row["split"])
    assert all(len(side) == 1 for side in sides.values())
    expected = split_side(content_hash=world.root.content_hash, test_fraction=0.5)
    assert sides[world.root.pk] == {expected}
    assert len([r for r in rows if r["root_prompt_id"] == world.root.pk]) == ALL_PAIRS - 6


def test_parquet_and_gzip_hold_the_jsonl_rows(world):
    rows = export(world.project, "conversation_pairs", {"tie_policy": "keep"})
    assert sum(r["tie"] for r in rows) == 2  # carol's P = T and alice's Cake = Cookies
    for file_format in ("parquet", "jsonl.gz"):
        assert export(world.project, "conversation_pairs", {"tie_policy": "keep"}, file_format) == rows


# --- Through the app: API, background job and card, datasets ---------------------------------------


def test_api_streams_and_counts_with_the_edit_choice(world, project_admin, api_client):
    api_client.force_authenticate(project_admin)
    query = {"export_format": "conversation_pairs", "file_format": "jsonl", "edit_pairs": "without_edits"}
    response = api_client.get(f"/api/projects/{world.project.pk}/exports/stream", query)
    assert response.status_code == 200, response.content
    assert len(b"".join(response.streaming_content).splitlines()) == ALL_PAIRS - 7
    count = api_client.get(f"/api/projects/{world.project.pk}/exports/count", query).json()
    assert (count["rows"], count["row_kind"], count["filters"]) == (
        ALL_PAIRS - 7,
        "conversation_pairs",
        {"edit_pairs": "without_edits"},
    )
    refused = api_client.get(
        f"/api/projects/{world.project.pk}/exports/stream",
        {"export_format": "oasst_trees", "file_format": "parquet"},
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_file_format"


@pytest.mark.parametrize(
    ("export_format", "filters", "rows", "described"),
    [
        ("conversation_pairs", {"edit_pairs": "edited_chosen_rejected"}, 3, "edited > chosen > rejected"),
        ("oasst_trees", {}, 2, "Open-Assistant's message-tree shape"),
    ],
)
def test_background_job_writes_the_file_and_a_card_that_describes_the_rows(
    world, project_admin, settings, tmp_path, export_format, filters, rows, described
):
    settings.EXPORT_DIR = tmp_path / "exports"
    job = export_job_create(
        project=world.project,
        requested_by=project_admin,
        export_format=export_format,
        file_format="jsonl",
        filters=filters,
    )
    done = export_job_run(job_id=job.pk)
    assert done.status == ExportStatus.SUCCEEDED, done.error
    assert done.rows_written == rows == done.rows_total
    path = Path(done.file_path)
    assert len(path.read_text().splitlines()) == rows
    card = path.with_name(path.name.removesuffix(".jsonl") + ".README.md").read_text()
    assert "## Rows" in card and described in card


def test_both_formats_load_with_datasets(world, tmp_path):
    datasets = pytest.importorskip("datasets")
    for export_format, rows in (("conversation_pairs", ALL_PAIRS), ("oasst_trees", 2)):
        path = tmp_path / f"{export_format}.jsonl"
        request = export_request_validate(
            project=world.project, export_format=export_format, file_format="jsonl", filters={}
        )
        path.write_bytes(b"".join(export_stream(request=request)))
        dataset = datasets.load_dataset(
            "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
        )
        assert len(dataset) == rows
        first = json.loads(path.read_text().splitlines()[0])
        key = "prompt"
        assert dataset[0][key] == first[key]


@pytest.mark.slow
def test_conversation_pairs_train_in_the_reward_trainer(world, project_admin, api_client, tmp_path, offline):
    """The pairs of the tree, as a user downloads them, train the packaged MiniLM reward model."""
    import datasets
    import torch

    from tests.annotation.test_exports_trainers import reward_trainer

    api_client.force_authenticate(project_admin)
    response = api_client.get(
        f"/api/projects/{world.project.pk}/exports/stream",
        {"export_format": "conversation_pairs", "file_format": "jsonl", "margin": "true"},
    )
    path = tmp_path / "conversation_pairs.jsonl"
    path.write_bytes(b"".join(response.streaming_content))
    dataset = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert len(dataset) == ALL_PAIRS and max(len(prompt) for prompt in dataset["prompt"]) == 6
    trainer = reward_trainer(dataset, tmp_path / "out")
    assert len(trainer.train_dataset) == ALL_PAIRS, "the trainer dropped rows"
    assert "margin" in trainer.train_dataset.column_names
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), losses
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[name], after[name].detach()) for name in before), "no weight moved"


@pytest.fixture
def offline(monkeypatch):
    """No request may reach the Hub: the reward model is the packaged MiniLM."""
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
