"""The project dashboard plots the reward model's versions on the frozen evaluation set: accuracy and
RM-labeler beside labeler-labeler agreement, calibration error per version, and the latest version's
reliability diagram and score histogram. The measures are made by rewards.ml.evaluation from a small
fixture, so the page reads exactly what training stores. Screenshot: test-artifacts/."""

from __future__ import annotations

import math

import pytest

from annotation.models import Membership
from annotation.models.projects import Role
from rewards.ml.evaluation import ScoredRanking, evaluation_report
from rewards.models import RewardModel

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def measures(shift: float) -> dict:
    """A version's stored evaluation: two prompts, one ranked twice; `shift` moves one score."""
    scores_a = {1: 2.0 + shift, 2: 0.0, 3: -0.5}
    rankings = [
        ScoredRanking(prompt_key="a", order=[[1], [2], [3]], scores=scores_a),
        ScoredRanking(prompt_key="a", order=[[2], [1], [3]], scores=scores_a),
        ScoredRanking(prompt_key="b", order=[[4], [5]], scores={4: math.log(3), 5: 0.0}),
    ]
    labelers = {
        "agreement": 2 / 3,
        "kendall_tau": 1 / 3,
        "pairs_agreed": 2,
        "pairs_compared": 3,
        "ranking_pairs": 1,
        "prompts": 1,
    }
    return {
        "evaluation_set_id": 1,
        "share": 0.1,
        "set_prompts": 2,
        "ranked_prompts": 2,
        "cutoff": "2026-01-01T00:00:00+00:00",
        **evaluation_report(rankings, labeler_labeler=labelers),
    }


@pytest.fixture
def measured_project(project, django_user_model, password):
    boss = django_user_model.objects.create_user("boss", "boss@example.com", password)
    Membership.objects.create(project=project, user=boss, role=Role.ADMIN)
    RewardModel.objects.create(  # trained before the set existed: no measures, left out of the plots
        project=project, version=1, status="succeeded", trigger="admin", validation_accuracy=0.6, progress=1.0
    )
    for version, shift in ((2, 0.0), (3, -3.0)):
        evaluation = measures(shift)
        RewardModel.objects.create(
            project=project,
            version=version,
            status="succeeded",
            trigger="admin",
            is_active=version == 3,
            validation_accuracy=evaluation["accuracy"],
            progress=1.0,
            metrics={
                "epochs": [
                    {"epoch": 1, "train_loss": 0.6, "val_loss": 0.62, "val_accuracy": evaluation["accuracy"]}
                ],
                "validation_source": "evaluation_set",
                "validation_pairs": evaluation["pairs"],
                "validation_prompts": 2,
                "evaluation": evaluation,
            },
        )
    return project, boss


def test_the_dashboard_plots_each_versions_measures_on_the_frozen_set(
    page, live_server, login, measured_project, artifacts
):
    project, boss = measured_project
    login(page, boss, f"/dashboard/projects/{project.pk}/")
    for chart in ("agreement", "ece", "reliability", "scores"):
        page.wait_for_selector(f"#chart-rm-eval-{chart} svg.chart-svg[data-rendered=true]")

    # v2 and v3 (v1 has no measures): three lines of two points each.
    agreement = page.locator("#chart-rm-eval-agreement")
    assert agreement.locator("path.chart-line").count() == 3
    assert agreement.locator("circle.chart-point").count() == 6
    text = agreement.inner_text()
    assert (
        "RM-labeler" in text
        and "labeler-labeler" in text
        and "v2" in text
        and "v3" in text
        and "v1" not in text
    )

    v2, v3 = measures(0.0), measures(-3.0)
    ece = page.locator("#chart-rm-eval-ece")
    assert ece.locator("rect.chart-bar").count() == 2
    assert f"{v2['calibration']['ece']:.2f}" in ece.inner_text()
    assert f"{v3['calibration']['ece']:.2f}" in ece.inner_text()
    assert "v3 (7 pairs)" in ece.inner_text()

    # The latest version's diagram: a point per non-empty bin, beside the diagonal's ten.
    reliability = page.locator("#chart-rm-eval-reliability")
    filled = sum(1 for row in v3["calibration"]["bins"] if row["count"])
    assert reliability.locator("circle.chart-point").count() == filled + 10
    assert "(v3)" in reliability.inner_text() and "perfectly calibrated" in reliability.inner_text()
    scores = page.locator("#chart-rm-eval-scores")
    assert scores.locator("rect.chart-bar").count() == len(v3["scores"]["counts"]) == 20

    page.wait_for_selector("#retrain-status:not(:empty)")
    assert "pairs of the frozen evaluation set" in page.inner_text("#retrain-status")
    page.screenshot(path=str(artifacts / "dashboard-rm-evaluation.png"), full_page=True)
