"""The frozen evaluation set: chosen by rule when the project first trains, stable as prompts are
added, never trained on; the measures each version stores on it (checked by hand on a small
fixture, and against the scores the scoring service stores); and the API that serves them."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from annotation.models import Candidate, Comparison, Membership, Prompt
from annotation.models.projects import Role
from annotation.services.prompts import turns_hash
from annotation.services.rankings import ranking_record
from rewards.ml.evaluation import ScoredRanking, evaluation_report, score_histogram
from rewards.models import CandidateScore, EvaluationPrompt, EvaluationSet, RewardModel, RewardModelStatus
from rewards.selectors.reward_models import training_data
from rewards.services.runs import reward_model_request
from rewards.services.scoring import candidates_score
from rewards.services.training import reward_model_train


def in_set_by_rule(content_hash: str, share: float) -> bool:
    """The rule written out again here, so a change to the service's salt or reading shows."""
    digest = hashlib.sha256(b"rlhf-reward-evaluation:v1:" + content_hash.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def members(project) -> set[int]:
    return set(
        EvaluationPrompt.objects.filter(evaluation_set__project=project).values_list("prompt_id", flat=True)
    )


def train_once(project):
    finished = reward_model_train(reward_model_id=reward_model_request(project=project, trigger="api").pk)
    assert finished.status == RewardModelStatus.SUCCEEDED, finished.error
    return finished


def child_of(parent: Prompt, text: str) -> Prompt:
    """A conversation's next turn, as the converse service stores it: a child prompt."""
    turns = [*parent.turns, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": text}]
    return Prompt.objects.create(
        project=parent.project, turns=turns, content_hash=turns_hash(turns=turns), parent=parent
    )


# --- The set ---------------------------------------------------------------------------------------


def test_the_set_is_fixed_at_first_training_and_only_grows_by_the_same_rule(
    project, labeler, make_rankings, tiny_config, artifact_dir, settings
):
    settings.REWARD_MODEL_EVALUATION_SHARE = 0.25
    project.reward_model_config = tiny_config
    project.save()
    make_rankings(project, prompts=16, labeler=labeler)
    assert not EvaluationSet.objects.filter(project=project).exists()

    first = train_once(project)
    evaluation_set = EvaluationSet.objects.get(project=project)
    assert evaluation_set.share == 0.25
    expected = {p.pk for p in project.prompts.all() if in_set_by_rule(p.content_hash, 0.25)}
    assert members(project) == expected and 0 < len(expected) < 16
    assert first.metrics["validation_source"] == "evaluation_set"
    assert first.metrics["validation_prompts"] == len(expected)

    # The setting changes and prompts arrive, some continuing conversations: old members stay, the
    # share is the set's own, and each new prompt is judged by the rule on its conversation's root.
    settings.REWARD_MODEL_EVALUATION_SHARE = 0.9
    make_rankings(project, prompts=16, labeler=labeler, start=16)
    inside = Prompt.objects.get(pk=min(expected))
    outside = project.prompts.exclude(pk__in=expected).first()
    inside_child, outside_child = child_of(inside, "And then?"), child_of(outside, "And then?")
    second = train_once(project)
    assert EvaluationSet.objects.get(project=project).share == 0.25
    now = members(project)
    assert expected <= now
    roots = {p.pk: p for p in project.prompts.filter(parent__isnull=True)}
    new_roots = {pk for pk, p in roots.items() if pk not in expected and in_set_by_rule(p.content_hash, 0.25)}
    assert now == expected | new_roots | {inside_child.pk}
    assert outside_child.pk not in now
    assert (
        second.metrics["evaluation"]["evaluation_set_id"] == first.metrics["evaluation"]["evaluation_set_id"]
    )


def test_its_comparisons_are_never_in_the_training_data(
    project, labeler, make_rankings, tiny_config, artifact_dir, settings
):
    settings.REWARD_MODEL_EVALUATION_SHARE = 0.3
    project.reward_model_config = tiny_config
    project.save()
    make_rankings(project, prompts=12, labeler=labeler)
    run = train_once(project)
    frozen = members(project)
    ranked_frozen = set(Comparison.objects.filter(prompt_id__in=frozen).values_list("prompt_id", flat=True))
    assert ranked_frozen

    data = training_data(project=project, cutoff=timezone.now())
    trained_on = {int(example.prompt_key) for example in data.examples}
    assert trained_on and not trained_on & frozen
    assert data.comparisons == Comparison.objects.exclude(prompt_id__in=frozen).count()
    assert run.comparisons_seen == data.comparisons
    assert run.data_summary["evaluation"]["rankings"] == len(ranked_frozen)
    # The run validated on exactly the frozen set's comparisons (5 per ranking), not a split of its own.
    assert run.metrics["validation_pairs"] == run.metrics["evaluation"]["pairs"] == 5 * len(ranked_frozen)
    assert run.metrics["train_pairs"] == data.comparisons


def test_a_project_whose_set_has_no_ranking_yet_validates_on_held_out_prompts(
    project, labeler, make_rankings, tiny_config, artifact_dir, settings
):
    settings.REWARD_MODEL_EVALUATION_SHARE = 0.0
    project.reward_model_config = tiny_config
    project.save()
    make_rankings(project, prompts=8, labeler=labeler)
    run = train_once(project)
    assert members(project) == set()
    assert run.metrics["validation_source"] == "held_out" and run.metrics["validation_pairs"] > 0
    assert (
        run.metrics["evaluation"]["accuracy"] is None and run.metrics["evaluation"]["labeler_labeler"] is None
    )


# --- The measures ------------------------------------------------------------------------------------


def test_measures_on_a_hand_checked_fixture():
    # Prompt a is ranked twice, b once; candidate ids are the keys. Margins (better - worse):
    # ranking 1: (1,2) 2, (1,3) 2, (2,3) 0; ranking 2: (2,1) -2, (2,3) 0; ranking 3: (4,5) ln 3.
    scores_a = {1: 2.0, 2: 0.0, 3: 0.0}
    rankings = [
        ScoredRanking(prompt_key="a", order=[[1], [2], [3]], scores=scores_a),
        ScoredRanking(prompt_key="a", order=[[2], [1, 3]], scores=scores_a),
        ScoredRanking(prompt_key="b", order=[[4], [5]], scores={4: math.log(3), 5: 0.0}),
    ]
    labelers = {"agreement": 0.5, "pairs_agreed": 1, "pairs_compared": 2, "prompts": 1}
    report = evaluation_report(rankings, labeler_labeler=labelers)

    assert report["accuracy"] == 3 / 6 and report["pairs"] == 6  # a tie counts as wrong
    # On prompt a only (ranked twice); the model's two ties are left out: 2 of 3.
    assert report["rm_labeler"] == {
        "agreement": 2 / 3,
        "pairs_agreed": 2,
        "pairs_compared": 3,
        "rankings": 2,
        "prompts": 1,
    }
    assert report["labeler_labeler"] == labelers

    # Each pair in both orientations: sigmoid(2) = 0.881 and 0.119, sigmoid(0) = 0.5 twice,
    # sigmoid(ln 3) = 0.75 and 0.25. Twelve points in five bins.
    calibration = report["calibration"]
    high, low = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2))
    by_bin = {row["lower"]: row for row in calibration["bins"] if row["count"]}
    assert set(by_bin) == {0.1, 0.2, 0.5, 0.7, 0.8}
    assert by_bin[0.1]["count"] == 3 and by_bin[0.1]["observed"] == pytest.approx(1 / 3)
    assert by_bin[0.1]["mean_predicted"] == pytest.approx(low)
    assert by_bin[0.8]["count"] == 3 and by_bin[0.8]["observed"] == pytest.approx(2 / 3)
    assert by_bin[0.5] == {"lower": 0.5, "upper": 0.6, "count": 4, "mean_predicted": 0.5, "observed": 0.5}
    assert by_bin[0.7]["observed"] == 1.0 and by_bin[0.2]["observed"] == 0.0
    assert sum(row["count"] for row in calibration["bins"]) == 12 and calibration["pairs"] == 6
    expected_ece = 3 / 12 * (1 / 3 - low) + 3 / 12 * (high - 2 / 3) + 1 / 12 * 0.25 + 1 / 12 * 0.25
    assert calibration["ece"] == pytest.approx(expected_ece) and calibration["ece"] == pytest.approx(
        0.148732, abs=1e-6
    )

    # The five distinct answers' scores: 2, 0, 0, ln 3, 0.
    assert report["scores"]["count"] == 5 and sum(report["scores"]["counts"]) == 5
    assert report["scores"]["mean"] == pytest.approx((2 + math.log(3)) / 5)
    histogram = score_histogram([2.0, 0.0, 0.0, math.log(3), 0.0], bins=4)
    assert histogram["edges"] == [0.0, 0.5, 1.0, 1.5, 2.0] and histogram["counts"] == [3, 0, 1, 1]
    assert score_histogram([1.0, 1.0], bins=4)["counts"] == [2]


def test_a_version_stores_rm_labeler_beside_labeler_labeler_agreement(
    project, labeler, other_labeler, make_rankings, tiny_config, artifact_dir, settings
):
    """Alice ranks good > (meh = odd) > bad, Bob meh > good > odd > bad: they agree on 4 of the 5
    pairs both order. The model's agreement is checked against the scores the scoring service
    stores for the same version, pair by pair from the comparison rows."""
    settings.REWARD_MODEL_EVALUATION_SHARE = 0.3
    project.reward_model_config = tiny_config
    project.save()
    for ranking in make_rankings(project, prompts=12, labeler=labeler):
        good, (meh, odd), bad = ranking.order[0][0], ranking.order[1], ranking.order[2][0]
        ranking_record(
            prompt=ranking.prompt,
            candidate_ids=[good, meh, odd, bad],
            order=[[meh], [good], [odd], [bad]],
            labeler=other_labeler,
        )
    run = train_once(project)
    evaluation = run.metrics["evaluation"]
    frozen = members(project)
    assert evaluation["ranked_prompts"] == len(frozen) > 0 and evaluation["rankings"] == 2 * len(frozen)

    labelers = evaluation["labeler_labeler"]
    assert labelers["agreement"] == pytest.approx(0.8)
    assert (labelers["pairs_agreed"], labelers["pairs_compared"]) == (4 * len(frozen), 5 * len(frozen))
    assert labelers["prompts"] == len(frozen)

    candidates_score(reward_model_id=run.pk)
    scores = dict(CandidateScore.objects.filter(reward_model=run).values_list("candidate_id", "score"))
    margins = [
        scores[better] - scores[worse]
        for better, worse in Comparison.objects.filter(prompt_id__in=frozen).values_list("better", "worse")
    ]
    # The stored scores come from the saved files, so a margin within rounding could read either way.
    surely, maybe = sum(1 for m in margins if m > 1e-4), sum(1 for m in margins if m > -1e-4)
    rm_labeler = evaluation["rm_labeler"]
    assert rm_labeler["pairs_compared"] == len(margins) == 11 * len(frozen)
    assert surely <= rm_labeler["pairs_agreed"] <= maybe
    assert rm_labeler["agreement"] == pytest.approx(rm_labeler["pairs_agreed"] / len(margins))
    assert rm_labeler["rankings"] == 2 * len(frozen) and rm_labeler["prompts"] == len(frozen)
    # Every frozen prompt is ranked twice, so accuracy is over the same pairs.
    assert evaluation["accuracy"] == pytest.approx(rm_labeler["agreement"])
    assert run.validation_accuracy == pytest.approx(evaluation["accuracy"])
    assert evaluation["calibration"]["pairs"] == len(margins)
    assert sum(row["count"] for row in evaluation["calibration"]["bins"]) == 2 * len(margins)
    assert 0 <= evaluation["calibration"]["ece"] <= 1
    answers = set(Candidate.objects.filter(prompt_id__in=frozen).values_list("id", flat=True))
    assert evaluation["scores"]["count"] == sum(evaluation["scores"]["counts"]) == len(answers)
    mean = sum(scores[cid] for cid in answers) / len(answers)
    assert evaluation["scores"]["mean"] == pytest.approx(mean, abs=1e-5)


def test_versions_measured_again_stand_on_the_same_comparisons(
    project, labeler, make_rankings, tiny_config, artifact_dir, settings, capsys
):
    settings.REWARD_MODEL_EVALUATION_SHARE = 0.3
    project.reward_model_config = tiny_config
    project.save()
    make_rankings(project, prompts=12, labeler=labeler)
    first = train_once(project)
    make_rankings(project, prompts=12, labeler=labeler, start=12)
    second = train_once(project)
    before = first.metrics["evaluation"]["rankings"]
    assert before < second.metrics["evaluation"]["rankings"]  # the set's new prompts were ranked

    call_command("evaluate_reward_models", str(project.pk))
    first.refresh_from_db()
    again = RewardModel.objects.get(pk=second.pk).metrics["evaluation"]
    assert (
        first.metrics["evaluation"]["rankings"]
        == again["rankings"]
        == second.metrics["evaluation"]["rankings"]
    )
    assert first.metrics["evaluation"]["pairs"] == again["pairs"]
    # The same model on the same comparisons: the same figures, from its saved files.
    assert again["accuracy"] == pytest.approx(second.metrics["evaluation"]["accuracy"])
    assert again["calibration"]["ece"] == pytest.approx(
        second.metrics["evaluation"]["calibration"]["ece"], abs=1e-5
    )
    assert first.metrics["epochs"] and first.version == 1  # the rest of its metrics are kept
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["version"] for row in printed] == [1, 2]


# --- The API -----------------------------------------------------------------------------------------


def test_the_history_api_serves_each_versions_measures(
    api_client, project, labeler, other_labeler, make_rankings, tiny_config, artifact_dir, settings
):
    settings.REWARD_MODEL_EVALUATION_SHARE = 0.3
    project.reward_model_config = tiny_config
    project.save()
    make_rankings(project, prompts=12, labeler=labeler)
    first = train_once(project)
    make_rankings(project, prompts=4, labeler=labeler, start=12)
    second = train_once(project)
    Membership.objects.filter(project=project, user=other_labeler).update(role=Role.REVIEWER)
    api_client.force_authenticate(other_labeler)
    url = reverse("quality-reward-model-history", kwargs={"project_id": project.pk})
    body = api_client.get(url).json()

    by_id = {run["id"]: run for run in body["results"]}
    for run in (first, second):
        served = by_id[run.pk]
        assert served["validation_source"] == "evaluation_set"
        evaluation = served["evaluation"]
        stored = run.metrics["evaluation"]
        assert evaluation["accuracy"] == pytest.approx(stored["accuracy"])
        assert evaluation["rm_labeler"]["agreement"] == pytest.approx(stored["rm_labeler"]["agreement"])
        assert evaluation["labeler_labeler"]["pairs_compared"] == 0  # one ranking per prompt
        assert evaluation["calibration"]["ece"] == pytest.approx(stored["calibration"]["ece"])
        assert len(evaluation["calibration"]["bins"]) == 10
        assert len(evaluation["scores"]["edges"]) == len(evaluation["scores"]["counts"]) + 1
        assert evaluation["evaluation_set_id"] == EvaluationSet.objects.get(project=project).pk
    # A run from before the set existed has no measures, and says so.
    first.metrics = {"epochs": []}
    first.save(update_fields=["metrics"])
    served = {run["id"]: run for run in api_client.get(url).json()["results"]}[first.pk]
    assert served["evaluation"] is None and served["validation_source"] is None
