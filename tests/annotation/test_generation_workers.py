"""Generation workers: topping one prompt up to K distinct candidates, and its errors."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotation.models import Candidate, Demonstration, Prompt
from annotation.services import candidates as services
from annotation.tasks import MAX_RETRIES, candidates_generate
from tests.annotation.generation_servers import Reply


def _candidate(prompt: Prompt, text: str, source: str = "import") -> Candidate:
    return Candidate.objects.create(
        prompt=prompt, text=text, content_hash=services.candidate_text_hash(text=text), source=source
    )


# --- One prompt up to K --------------------------------------------------------------------------


@pytest.mark.slow
def test_task_fills_a_prompt_with_k_real_candidates_then_does_nothing(project, make_prompts):
    project.max_tokens = 24
    project.temperature = 1.0
    project.save()
    [prompt] = make_prompts(project, 1, prefix="Name a fruit and say why you like it, number")
    Prompt.objects.filter(pk=prompt.pk).update(generation_queued_at=timezone.now())

    result = candidates_generate.apply(args=[prompt.pk]).get()

    assert result["created"] == project.k and result["total"] == project.k and not result["error"]
    candidates = list(prompt.candidates.all())
    assert len({c.content_hash for c in candidates}) == project.k
    for candidate in candidates:
        assert candidate.text.strip() and candidate.source == "model"
        assert candidate.backend == "embedded" and candidate.model_name == "gemma-3-270m-q4_k_m.gguf"
        assert candidate.sampling_params["max_tokens"] == 24
        assert candidate.sampling_params["prompt_format"] == "question-answer-v1"
        assert candidate.seed and candidate.prompt_tokens and candidate.completion_tokens
        assert candidate.generation_seconds > 0
        assert candidate.finish_reason in {"stop", "length"}
    assert len({c.seed for c in candidates}) == project.k
    prompt.refresh_from_db()
    assert prompt.generation_queued_at is None and prompt.generation_error == ""

    again = candidates_generate.apply(args=[prompt.pk]).get()
    assert again["created"] == 0 and again["samples"] == 0
    assert prompt.candidates.count() == project.k


def test_a_partly_filled_prompt_gets_only_what_is_missing(http_project, make_prompts, scripted_server):
    [prompt] = make_prompts(http_project, 1)
    _candidate(prompt, "An imported answer.")
    _candidate(prompt, "Answer number 1.")  # the server's first answer: a duplicate to replace

    outcome = services.candidates_generate(prompt_id=prompt.pk)

    assert (outcome.created, outcome.total, outcome.samples) == (2, 4, 3)
    assert len(scripted_server.requests) == 3
    texts = set(prompt.candidates.values_list("text", flat=True))
    assert texts == {"An imported answer.", "Answer number 1.", "Answer number 2.", "Answer number 3."}


def test_an_answer_cut_off_at_the_token_limit_is_stored_as_such(http_project, make_prompts, scripted_server):
    [prompt] = make_prompts(http_project, 1)
    scripted_server.script = [Reply(text="Cut off mid", finish_reason="length")]

    services.candidates_generate(prompt_id=prompt.pk)

    reasons = dict(prompt.candidates.values_list("text", "finish_reason"))
    assert reasons.pop("Cut off mid") == "length"
    assert set(reasons.values()) == {"stop"} and len(reasons) == http_project.k - 1
    assert [c.cut_off for c in prompt.candidates.order_by("pk")] == [True] + [False] * (http_project.k - 1)


def test_duplicates_are_resampled_a_bounded_number_of_times(http_project, make_prompts, scripted_server):
    [prompt] = make_prompts(http_project, 1)
    scripted_server.default = Reply(text="Always the same.")

    outcome = services.candidates_generate(prompt_id=prompt.pk)

    # 4 asked, 1 kept; then replacements, all duplicates, until the budget of 3 per missing one is spent.
    assert outcome.samples == 4 + 3 + 3 + 2 == 3 * 4 == len(scripted_server.requests)
    assert outcome.created == 1 and "only 1 of the 4" in outcome.error
    prompt.refresh_from_db()
    assert "only 1 of the 4" in prompt.generation_error and prompt.generation_error_at is not None
    assert list(prompt.candidates.values_list("text", flat=True)) == ["Always the same."]


def test_whitespace_variants_and_empty_answers_are_not_new(http_project, make_prompts, scripted_server):
    [prompt] = make_prompts(http_project, 1)
    scripted_server.script = [Reply(text="Same  words."), Reply(text="Same words.\n"), Reply(text="  ")]

    outcome = services.candidates_generate(prompt_id=prompt.pk)

    assert outcome.total == 4 and not outcome.error
    texts = list(prompt.candidates.values_list("text", flat=True))
    assert "Same  words." in texts and "Same words." not in texts and "" not in texts


def test_demonstrations_are_among_the_candidates_when_the_project_says_so(
    http_project, make_prompts, labeler, other_labeler
):
    http_project.demonstrations_as_candidates = True
    http_project.save()
    first, second = make_prompts(http_project, 2)
    for user, text in ((labeler, "A careful human answer."), (other_labeler, "Another human answer.")):
        Demonstration.objects.create(prompt=first, labeler=user, text=text)

    outcome = services.candidates_generate(prompt_id=first.pk)

    assert outcome.created == 4
    from_people = first.candidates.filter(source="demonstration")
    assert {c.demonstration.labeler_id for c in from_people} == {labeler.pk, other_labeler.pk}
    assert first.candidates.filter(source="model").count() == 2

    http_project.demonstrations_as_candidates = False
    http_project.save()
    Demonstration.objects.create(prompt=second, labeler=labeler, text="Not shown to rankers.")
    services.candidates_generate(prompt_id=second.pk)
    assert not second.candidates.filter(source="demonstration").exists()


# --- Errors ------------------------------------------------------------------------------------


def test_backend_error_lands_on_the_prompt_and_nothing_half_written_stays(
    http_project, make_prompts, scripted_server
):
    [prompt] = make_prompts(http_project, 1)
    _candidate(prompt, "Kept from before.")
    # The first sample succeeds, every later request fails: the run as a whole must store nothing.
    scripted_server.script = [Reply()]
    scripted_server.default = Reply(status=500)

    result = candidates_generate.apply(args=[prompt.pk]).get()

    assert "gave up after" in result["error"]
    assert len(scripted_server.requests) == 2 + MAX_RETRIES  # eager retries run at once
    assert list(prompt.candidates.values_list("text", flat=True)) == ["Kept from before."]
    prompt.refresh_from_db()
    assert f"gave up after {MAX_RETRIES + 1} attempts" in prompt.generation_error
    assert "HTTP 500" in prompt.generation_error
    assert "sk-secret-key-77" not in prompt.generation_error
    assert prompt.generation_error_at is not None and prompt.generation_queued_at is None


def test_a_setting_to_fix_is_recorded_without_retrying(http_project, make_prompts, scripted_server):
    [prompt] = make_prompts(http_project, 1)
    scripted_server.default = Reply(status=400)

    result = candidates_generate.apply(args=[prompt.pk]).get()

    assert "HTTP 400" in result["error"] and len(scripted_server.requests) == 1
    prompt.refresh_from_db()
    assert "HTTP 400" in prompt.generation_error and not prompt.candidates.exists()


def test_success_clears_an_earlier_error(http_project, make_prompts):
    [prompt] = make_prompts(http_project, 1)
    services.prompt_generation_error_record(prompt_id=prompt.pk, message="server was down")

    candidates_generate.apply(args=[prompt.pk]).get()

    prompt.refresh_from_db()
    assert prompt.generation_error == "" and prompt.generation_error_at is None
    assert prompt.candidates.count() == http_project.k


def test_a_deleted_prompt_is_not_an_error(db):
    assert candidates_generate.apply(args=[987654]).get()["error"] == "prompt deleted"


def test_embedded_model_that_does_not_exist_is_recorded(project, make_prompts, tmp_path, settings):
    settings.MODEL_DIRS = [tmp_path]  # an allowed folder, so the refusal is about the missing file
    project.generation_model = str(tmp_path / "missing.gguf")
    project.save()
    [prompt] = make_prompts(project, 1)
    candidates_generate.apply(args=[prompt.pk]).get()
    prompt.refresh_from_db()
    assert "does not exist" in prompt.generation_error
