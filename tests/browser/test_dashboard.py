"""An admin opens the project dashboard in headless Chromium, sees every chart render, starts a retrain
and watches its progress, then downloads exports (direct and background). Screenshots: test-artifacts/."""

from __future__ import annotations

import gzip
import json

import pytest
from django.urls import NoReverseMatch, reverse

from annotation.models import ExportJob, Membership, Ranking
from annotation.models.projects import Role
from config.celery import app as celery_app
from tests.annotation.export_data import demonstration_make, ranked_prompt

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dashboard_project(project, labeler, other_labeler, django_user_model, password):
    boss = django_user_model.objects.create_user("boss", "boss@example.com", password)
    Membership.objects.create(project=project, user=boss, role=Role.ADMIN)
    for index in range(4):
        swap = [[1], [0], [2], [3]] if index % 2 else [[0], [1], [2], [3]]
        prompt, _ = ranked_prompt(project, index, [labeler, other_labeler], [[[0], [1], [2], [3]], swap])
    demonstration_make(prompt, labeler, "A demonstration written by a person.")
    from rewards.models import RewardModel

    for version, accuracy in ((1, 0.61), (2, 0.68)):
        RewardModel.objects.create(
            project=project,
            version=version,
            status="succeeded",
            trigger="admin",
            validation_accuracy=accuracy,
            progress=1.0,
            metrics={
                "epochs": [
                    {"epoch": 1, "train_loss": 0.69, "val_loss": 0.68, "val_accuracy": accuracy - 0.05},
                    {"epoch": 2, "train_loss": 0.55, "val_loss": 0.6, "val_accuracy": accuracy},
                ]
            },
        )
    return project, boss


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def _retrain_available(project_id: int) -> bool:
    try:
        reverse("reward-model-retrain", kwargs={"project_id": project_id})
    except NoReverseMatch:
        return False
    return True


def test_admin_sees_charts_retrains_and_downloads(
    page, live_server, login, dashboard_project, artifacts, tmp_path, settings, eager_celery, monkeypatch
):
    project, boss = dashboard_project
    settings.EXPORT_DIR = tmp_path / "exports"
    login(page, boss, f"/dashboard/projects/{project.pk}/")

    page.wait_for_function("document.querySelectorAll('svg.chart-svg[data-rendered=true]').length >= 5")
    assert page.locator("#chart-throughput path.chart-line").count() == 2
    assert page.locator("#chart-queue rect.chart-bar").count() == 4
    assert page.locator("#chart-agreement circle.chart-point").count() >= 1
    assert page.locator("#chart-rm-accuracy rect.chart-bar").count() == 2
    assert page.locator("#chart-rm-loss path.chart-line").count() == 2
    page.wait_for_function("document.getElementById('stat-agreement').textContent.includes('%')")
    # Two agreeing prompts (6/6 each) and two with one swap (5/6 each): 22/24.
    assert page.inner_text("#stat-agreement") == "92%"
    page.wait_for_selector("#labeler-table tbody tr")
    assert "alice" in page.inner_text("#labeler-table")

    if _retrain_available(project.pk):
        # Training itself is the reward-model app's test; here the queued run must show up live (and no
        # message is left on the broker for a later test's worker).
        import rewards.services.runs as runs

        monkeypatch.setattr(runs, "_send_after_commit", lambda reward_model: None)
        page.click("#retrain-now")
        page.wait_for_selector("#retrain-progress:not([hidden])")
        from rewards.models import RewardModel

        run = RewardModel.objects.get(project=project, status="queued")
        RewardModel.objects.filter(pk=run.pk).update(
            status="running", progress=0.5, progress_message="epoch 1/2"
        )
        page.wait_for_function(
            "document.querySelector('#retrain-progress .label').textContent.includes('50%')"
        )
        assert "epoch 1/2" in page.inner_text("#retrain-progress")
    else:
        assert page.locator("#retrain-now").count() == 0

    # Mark alice's ranking of the first prompt as gold; bob's agreement with gold then shows.
    gold = page.locator("#prompt-table button.gold-toggle").first
    ranking_id = int(gold.get_attribute("data-ranking-id"))
    gold.click()
    page.wait_for_function(
        f"document.querySelector('button.gold-toggle[data-ranking-id=\"{ranking_id}\"]').textContent.includes('gold') "
        f"&& document.querySelector('button.gold-toggle[data-ranking-id=\"{ranking_id}\"]').getAttribute('aria-pressed') === 'true'"
    )
    assert Ranking.objects.get(pk=ranking_id).is_gold
    page.reload()
    page.wait_for_selector("#labeler-table tbody tr")
    bob_row = page.locator("#labeler-table tbody tr", has_text="bob").inner_text()
    assert "100%" in bob_row  # bob agreed with alice on the first prompt
    page.wait_for_function("document.querySelectorAll('svg.chart-svg[data-rendered=true]').length >= 5")
    page.screenshot(path=str(artifacts / "dashboard-project.png"), full_page=True)

    # Direct download, streamed.
    page.goto(f"{live_server.url}/dashboard/projects/{project.pk}/exports/")
    page.select_option("#export_format", "pairs_conversational")
    page.select_option("#file_format", "jsonl")
    with page.expect_download() as download_info:
        page.click("#download-now")
    path = tmp_path / "direct.jsonl"
    download_info.value.save_as(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 4 * 12 and rows[0]["chosen"][0]["role"] == "assistant"

    # Background job: queued, run by the (eager) worker after commit, then downloaded from its link.
    page.select_option("#export_format", "rankings")
    page.select_option("#file_format", "jsonl.gz")
    page.check("input[name=exclude_flagged]")
    page.click("#run-in-background")
    page.wait_for_selector("#export-jobs td.download a")
    job = ExportJob.objects.get()
    assert job.status == "succeeded" and job.filters == {"exclude_flagged": True}
    page.screenshot(path=str(artifacts / "dashboard-exports.png"), full_page=True)
    with page.expect_download() as download_info:
        page.click("#export-jobs td.download a")
    path = tmp_path / "job.jsonl.gz"
    download_info.value.save_as(path)
    rankings = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert len(rankings) == 4 and rankings[0]["consensus_order"]


def test_retrain_card_says_how_the_last_run_ended_and_which_version_is_active(
    page, live_server, login, dashboard_project, artifacts
):
    from rewards.models import RewardModel

    project, boss = dashboard_project
    RewardModel.objects.filter(project=project, version=2).update(
        is_active=True,
        metrics={
            "epochs": [{"epoch": 1, "train_loss": 0.6, "val_loss": 0.62, "val_accuracy": 0.68}],
            "curve": [{"step": s, "train_loss": 0.7 - 0.02 * s} for s in range(1, 9)],
            "validation_pairs": 24,
            "validation_prompts": 2,
        },
    )
    failed = RewardModel.objects.create(
        project=project,
        status="failed",
        trigger="schedule",
        error="Not enough rankings to train on\nTraceback (most recent call last): ...",
    )
    login(page, boss, f"/dashboard/projects/{project.pk}/")
    page.wait_for_function("document.getElementById('retrain-status').textContent.length > 0")
    status = page.inner_text("#retrain-status")
    assert "The last run failed: Not enough rankings to train on" in status and "Traceback" not in status
    assert "Active version: v2." in status
    page.screenshot(path=str(artifacts / "dashboard-retrain-failed.png"), full_page=True)

    failed.delete()  # now the last run is the one that trained v2
    page.reload()
    page.wait_for_function("document.getElementById('retrain-status').textContent.includes('trained')")
    status = page.inner_text("#retrain-status")
    assert "trained version v2: validation accuracy 68% on 24 held-out pairs from 2 prompts" in status
    # One epoch, but the loss curve has every logged step, not a single dot.
    page.wait_for_selector("#chart-rm-loss svg.chart-svg[data-rendered=true]")
    assert "step 8" in page.inner_text("#chart-rm-loss")
    assert "v2 (24 pairs)" in page.inner_text("#chart-rm-accuracy")  # the sample behind the figure
    page.screenshot(path=str(artifacts / "dashboard-retrain-succeeded.png"), full_page=True)


def test_orders_read_as_answers_and_a_prompt_opens_side_by_side(
    page, live_server, login, dashboard_project, artifacts
):
    from rewards.models import CandidateScore, RewardModel

    project, boss = dashboard_project
    active = RewardModel.objects.get(project=project, version=2)
    RewardModel.objects.filter(pk=active.pk).update(
        is_active=True, metrics={"validation_pairs": 24, "validation_prompts": 2}
    )
    first = Ranking.objects.filter(prompt__project=project).order_by("prompt_id", "id").first()
    candidates = list(first.prompt.candidates.order_by("id"))
    for candidate, score in zip(candidates, [1.5, 0.25, -0.5, -2.0], strict=True):
        CandidateScore.objects.create(candidate=candidate, reward_model=active, score=score)

    login(page, boss, f"/dashboard/projects/{project.pk}/")
    page.wait_for_selector("#prompt-table button.answer-excerpt")
    row = page.locator(f"#prompt-table tr[data-prompt-id='{first.prompt_id}']")
    consensus = row.locator("td.consensus").inner_text()
    assert "Answer 0.0" in consensus and "Answer 0.3" in consensus
    assert f"{candidates[0].pk} > {candidates[1].pk}" not in consensus  # words, not ids
    assert "alice: " in row.inner_text() and "Answer 0.1" in row.locator(".ranking").first.inner_text()
    excerpt = row.locator("td.consensus button.answer-excerpt").first
    assert excerpt.get_attribute("title") == "Answer 0.0"  # the whole answer on hover
    # The charts above render late and move the table; click once the page has settled.
    page.wait_for_function("document.querySelectorAll('svg.chart-svg[data-rendered=true]').length >= 5")
    excerpt.click()
    assert excerpt.get_attribute("aria-expanded") == "true"
    page.screenshot(path=str(artifacts / "dashboard-prompt-table.png"), full_page=True)

    row.locator("td a").first.click()
    page.wait_for_url(f"{live_server.url}/dashboard/projects/{project.pk}/prompts/{first.prompt_id}/")
    assert "Question 0?" in page.inner_text("#conversation")
    headings = page.inner_text("#prompt-review thead")
    assert "alice" in headings and "bob" in headings
    page.wait_for_function("document.querySelector('#prompt-review td.score').textContent !== '…'")
    best = page.locator(f"#prompt-review tr[data-candidate-id='{candidates[0].pk}']")
    assert "Answer 0.0" in best.locator("td.answer").inner_text()
    assert best.locator("td.score").inner_text() == "+1.500"
    assert best.locator("td.score-rank").inner_text() == "1"
    worst = page.locator(f"#prompt-review tr[data-candidate-id='{candidates[3].pk}']")
    assert worst.locator("td.score-rank").inner_text() == "4"
    assert worst.locator("td.ranking-cell").first.inner_text().startswith("4")  # alice put it last
    assert "v2: validation accuracy 68% on 24 held-out pairs of 2 prompts" in page.inner_text(
        "#reward-model-status"
    )
    page.screenshot(path=str(artifacts / "dashboard-prompt.png"), full_page=True)


def test_export_form_previews_rows_and_keeps_its_filters_through_a_job(
    page, live_server, login, dashboard_project, artifacts, tmp_path, settings, eager_celery
):
    project, boss = dashboard_project
    settings.EXPORT_DIR = tmp_path / "exports"
    alice = project.memberships.get(user__username="alice").user
    bob = project.memberships.get(user__username="bob").user
    login(page, boss, f"/dashboard/projects/{project.pk}/exports/")

    def wait_for_rows(text: str) -> None:
        page.wait_for_function(f"document.getElementById('export-count').textContent.includes('{text}')")

    page.select_option("#export_format", "pairs")
    wait_for_rows(" 48 rows")  # 4 prompts x 2 labelers x 6 pairs
    page.select_option("select[name=labelers]", [str(alice.pk)])
    wait_for_rows(" 24 rows")
    page.select_option("select[name=labelers]", [str(alice.pk), str(bob.pk)])
    wait_for_rows(" 48 rows")
    page.fill("input[name=min_agreement]", "0.9")  # prompts 1 and 3 agree on 5 pairs of 6 only
    wait_for_rows(" 24 rows")
    assert "preference pairs" in page.inner_text("#export-count")
    page.fill("input[name=min_agreement]", "7")
    page.wait_for_function("document.getElementById('export-count').classList.contains('error')")
    assert "Cannot export with these filters" in page.inner_text("#export-count")
    page.fill("input[name=min_agreement]", "0.9")
    page.select_option("#file_format", "jsonl.gz")
    page.check("input[name=exclude_flagged]")
    wait_for_rows(" 24 rows")
    assert "min_agreement=0.9" in page.url  # a reload now keeps them

    page.click("#run-in-background")
    page.wait_for_selector("#export-jobs td.download a")  # the (eager) job has finished
    job = ExportJob.objects.get()
    assert job.status == "succeeded" and job.rows_written == 24
    assert job.filters == {
        "labelers": sorted([alice.pk, bob.pk]),
        "min_agreement": 0.9,
        "exclude_flagged": True,
    }

    def assert_form_kept() -> None:
        assert page.input_value("#export_format") == "pairs"
        assert page.input_value("#file_format") == "jsonl.gz"
        assert page.input_value("input[name=min_agreement]") == "0.9"
        assert page.is_checked("input[name=exclude_flagged]")
        assert not page.is_checked("input[name=consensus_only]")
        chosen = page.eval_on_selector(
            "select[name=labelers]", "s => Array.from(s.selectedOptions).map(o => o.value)"
        )
        assert sorted(chosen) == sorted([str(alice.pk), str(bob.pk)])
        wait_for_rows(" 24 rows")

    assert_form_kept()
    page.screenshot(path=str(artifacts / "dashboard-exports-kept.png"), full_page=True)
    page.reload()
    assert_form_kept()


def test_home_is_an_overview_of_each_project(page, live_server, login, dashboard_project, artifacts):
    from rewards.models import RewardModel

    project, boss = dashboard_project
    RewardModel.objects.filter(project=project, version=2).update(
        is_active=True, metrics={"validation_pairs": 24, "validation_prompts": 2}
    )
    login(page, boss, "/dashboard/")
    row = page.locator(f"#project-overview tr[data-project-id='{project.pk}']")
    page.wait_for_function("!document.querySelector('td.reward-model').textContent.includes('…')")
    assert row.locator("td.reward-model").inner_text() == "v2: 68% on 24 held-out pairs of 2 prompts"
    assert row.locator("td.prompts").inner_text() == "4"
    assert row.locator("td.ranked").inner_text().startswith("4 · 0")  # every prompt has its 2 rankings
    assert row.locator("td.pace").inner_text() == "8 · 8"
    assert row.locator("td.active").inner_text() == "2"
    assert row.locator("td.agreement").inner_text().startswith("92%")
    page.screenshot(path=str(artifacts / "dashboard-home.png"), full_page=True)
    row.locator("td.name a").click()
    page.wait_for_url(f"{live_server.url}/dashboard/projects/{project.pk}/")
