"""Training end to end: accuracy on a recognisable task, artifacts that load back, runs and versions."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from annotation.models import Candidate, Demonstration
from rewards.ml.artifacts import LoadedRewardModel, artifact_load, artifact_save
from rewards.ml.config import TrainConfig
from rewards.ml.data import RankingExample
from rewards.ml.scoring import texts_score, texts_score_members
from rewards.ml.train import train
from rewards.models import CandidateScore, RewardModel, RewardModelStatus
from rewards.services.runs import reward_model_activate, reward_model_request
from rewards.services.scoring import candidates_score
from rewards.services.training import reward_model_train

TOPICS = ["cats", "rain", "tea", "chess", "jazz", "maps", "bread", "trains", "stars", "paint", "bees", "snow"]


def synthetic_rankings(count: int) -> list[RankingExample]:
    """The better answer is polite and on topic; the worst is rude. Two answers tie in the middle."""
    rng = random.Random(0)
    examples = []
    for index in range(count):
        topic = TOPICS[index % len(TOPICS)]
        answers = [
            f"Happy to help! Here is a friendly explanation of {topic} with a few useful details.",
            "No. Stop asking me things.",
            f"{topic}, I suppose.",
            "Something else entirely.",
        ]
        order = [[0], [2, 3], [1]]
        permutation = list(range(4))
        rng.shuffle(permutation)
        position = {old: new for new, old in enumerate(permutation)}
        examples.append(
            RankingExample(
                prompt_key=f"p{index}",
                turns=[{"role": "user", "content": f"Tell me about {topic}, question {index}."}],
                answers=[answers[old] for old in permutation],
                order=[[position[old] for old in group] for group in order],
            )
        )
    return examples


@pytest.mark.slow
def test_minilm_learns_a_recognisable_preference_to_high_validation_accuracy():
    config = TrainConfig(epochs=1, validation_fraction=0.25, learning_rate=1e-4)
    result = train(synthetic_rankings(48), config=config)
    epoch = result.metrics["epochs"][-1]
    assert result.metrics["validation_prompts"] == 12
    assert result.validation_accuracy is not None and result.validation_accuracy >= 0.9
    assert epoch["val_loss"] < 0.69  # better than chance (log 2)


def test_training_is_deterministic_and_artifacts_load_back_with_the_same_scores(tiny_backbone, tmp_path):
    config = TrainConfig(backbone=tiny_backbone, epochs=1, max_length=48, learning_rate=1e-3)
    examples = synthetic_rankings(16)
    demonstrations = [(examples[0].turns, "A demonstration written by a person.")]
    first = train(examples, config=config, normalise_on=demonstrations)
    second = train(examples, config=config, normalise_on=demonstrations)
    items = [(example.turns, answer) for example in examples[:3] for answer in example.answers]
    in_memory = LoadedRewardModel(model=first.model, tokenizer=first.tokenizer, config=config, meta={})
    scores = texts_score(in_memory, items)
    assert scores == texts_score(
        LoadedRewardModel(model=second.model, tokenizer=second.tokenizer, config=config, meta={}), items
    )
    # Demonstrations average 0 after normalisation.
    assert texts_score(in_memory, demonstrations) == [pytest.approx(0.0, abs=1e-5)]

    # The uncertainty heads: eight members on the model's pooled features, the same for the same run.
    heads = first.uncertainty_heads
    assert heads is not None and heads.shape == (8, 32)
    assert second.uncertainty_heads is not None and torch.equal(heads, second.uncertainty_heads)
    assert (
        first.metrics["uncertainty_heads"] == 8
        and first.metrics["uncertainty_comparisons"] == first.metrics["train_pairs"]
    )

    folder = artifact_save(
        model=first.model,
        tokenizer=first.tokenizer,
        config=config,
        metrics=first.metrics,
        folder=tmp_path / "a",
        uncertainty_heads=heads,
    )
    names = {path.name for path in folder.rglob("*") if path.is_file()}
    assert {"reward_model.json", "head.safetensors", "uncertainty_heads.safetensors", "config.json"} <= names
    assert "model.safetensors" in names
    assert not any(name.endswith((".bin", ".pt", ".pkl", ".pickle")) for name in names)
    loaded = artifact_load(folder)
    assert texts_score(loaded, items) == pytest.approx(scores, abs=1e-6)
    assert loaded.uncertainty_heads is not None and torch.equal(loaded.uncertainty_heads, heads)
    # One forward pass gives the score and every member's: the members are the heads on its features.
    member_scores_, members = texts_score_members(loaded, items)
    assert member_scores_ == pytest.approx(scores, abs=1e-6)
    assert members is not None and len(members) == len(items) and {len(row) for row in members} == {8}
    features = loaded.model.features_sequences(loaded.builder().build_many(items), chunk_tokens=512)
    assert torch.allclose(torch.tensor(members), features.detach() @ heads.T, atol=1e-5)

    # A version saved without heads (older versions) loads, and scores without members.
    bare = artifact_save(
        model=first.model, tokenizer=first.tokenizer, config=config, metrics={}, folder=tmp_path / "b"
    )
    bare_loaded = artifact_load(bare)
    assert bare_loaded.uncertainty_heads is None
    assert texts_score_members(bare_loaded, items) == (pytest.approx(scores, abs=1e-6), None)


def test_uncertainty_heads_can_be_turned_off_and_a_single_head_is_refused(tiny_backbone):
    config = TrainConfig(backbone=tiny_backbone, epochs=1, max_length=48, uncertainty_heads=0)
    result = train(synthetic_rankings(8), config=config)
    assert result.uncertainty_heads is None and result.metrics["uncertainty_heads"] == 0
    with pytest.raises(ValueError, match="uncertainty_heads must be 0"):
        TrainConfig.from_overrides({"uncertainty_heads": 1})
    with pytest.raises(ValueError, match="uncertainty_comparisons must be at least 16"):
        TrainConfig.from_overrides({"uncertainty_comparisons": 3})


def test_a_run_becomes_the_active_version_and_scores_every_candidate(
    project, labeler, make_rankings, tiny_config, artifact_dir
):
    project.reward_model_config = tiny_config
    project.save()
    make_rankings(project, prompts=12, labeler=labeler)
    prompt = project.prompts.first()
    Demonstration.objects.create(prompt=prompt, labeler=labeler, text="A good demonstration answer.")

    run = reward_model_request(project=project, trigger="api")
    assert run.status == RewardModelStatus.QUEUED
    finished = reward_model_train(reward_model_id=run.pk)
    assert finished.status == RewardModelStatus.SUCCEEDED, finished.error
    assert finished.version == 1 and finished.is_active
    # The frozen evaluation set's rankings are read beside the training data, never into it.
    trained, frozen = finished.data_summary["rankings"], finished.data_summary["evaluation"]["rankings"]
    assert trained + frozen == 12 and frozen > 0 and finished.comparisons_seen == trained * 5
    assert finished.data_summary["demonstrations"] == 1
    epoch = finished.metrics["epochs"][0]
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(epoch)
    assert finished.validation_accuracy == epoch["val_accuracy"]
    assert (artifact_dir / f"project-{project.pk}" / f"run-{run.pk}" / "reward_model.json").is_file()

    assert (
        candidates_score(reward_model_id=finished.pk)
        == Candidate.objects.filter(prompt__project=project).count()
    )
    assert candidates_score(reward_model_id=finished.pk) == 0  # idempotent
    assert CandidateScore.objects.filter(reward_model=finished).count() == 48
    # Each score carries the version's uncertainty heads' scores, for the queue's uncertainty order.
    assert {len(row) for row in CandidateScore.objects.values_list("member_scores", flat=True)} == {8}

    second = reward_model_train(reward_model_id=reward_model_request(project=project, trigger="admin").pk)
    first = RewardModel.objects.get(pk=finished.pk)
    assert second.version == 2 and second.is_active and not first.is_active

    reward_model_activate(reward_model=first)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.is_active and not second.is_active


def test_a_failing_run_ends_failed_and_keeps_the_previous_version_active(
    project, labeler, make_rankings, tiny_config, artifact_dir
):
    project.reward_model_config = tiny_config
    project.save()
    make_rankings(project, prompts=6, labeler=labeler)
    good = reward_model_train(reward_model_id=reward_model_request(project=project, trigger="api").pk)
    assert good.is_active

    missing = Path(tiny_config["backbone"]).parent / "no-such-model"  # in MODEL_DIRS, but not there
    project.reward_model_config = {**tiny_config, "backbone": str(missing)}
    project.save()
    bad = reward_model_train(reward_model_id=reward_model_request(project=project, trigger="api").pk)
    assert bad.status == RewardModelStatus.FAILED and bad.error and bad.version is None
    good.refresh_from_db()
    assert good.is_active
    assert not (artifact_dir / f"project-{project.pk}" / f"run-{bad.pk}").exists()


def test_a_project_without_rankings_fails_with_a_clear_reason(project, tiny_config, artifact_dir):
    project.reward_model_config = tiny_config
    project.save()
    run = reward_model_train(reward_model_id=reward_model_request(project=project, trigger="api").pk)
    assert run.status == RewardModelStatus.FAILED
    assert "no ranking" in run.error
