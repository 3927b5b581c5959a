"""Importing external preference data as rankings: TRL JSONL and HH-RLHF transcripts."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Candidate, Comparison, Prompt, Ranking
from rewards.services.imports import preferences_import
from tests.conftest import SHARED_DATA

HH_FILE = SHARED_DATA / "hh-rlhf-harmless-dev.jsonl"


def _jsonl(*records) -> bytes:
    return ("\n".join(json.dumps(record) for record in records) + "\n").encode()


def test_trl_plain_and_conversational_pairs_become_rankings(project):
    content = _jsonl(
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
        {
            "prompt": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of France?"},
            ],
            "chosen": [{"role": "assistant", "content": "Paris."}],
            "rejected": [{"role": "assistant", "content": "Lyon."}],
        },
        {  # TRL's implicit prompt: the shared leading turns
            "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}],
        },
        {"prompt": "What is 2+2?", "chosen": "four", "rejected": "5"},  # same prompt: reused
    )
    report = preferences_import(project=project, content=content, source="trl.jsonl")
    assert report.ok, report.errors
    assert report.rankings == 4 and report.prompts_created == 3
    rankings = Ranking.objects.filter(prompt__project=project).order_by("id")
    assert all(r.source == "import" and r.labeler_id is None for r in rankings)
    first = rankings[0]
    better, worse = first.order
    assert Candidate.objects.get(pk=better[0]).text == "4" and Candidate.objects.get(pk=worse[0]).text == "5"
    assert Candidate.objects.get(pk=better[0]).source == "import"
    assert Comparison.objects.filter(prompt__project=project).count() == 4
    france = Prompt.objects.get(project=project, turns__1__content="Capital of France?")
    assert france.turns[0] == {"role": "system", "content": "Be brief."}

    again = preferences_import(project=project, content=content)
    assert again.ok and again.rankings == 0 and again.duplicates == 4
    assert Ranking.objects.filter(prompt__project=project).count() == 4


def test_bad_lines_are_reported_by_number_and_nothing_is_written(project):
    content = (
        _jsonl(
            {"prompt": "ok", "chosen": "a", "rejected": "b"},
            {"prompt": "missing rejected", "chosen": "a"},
            {"chosen": "no prompt and not a transcript", "rejected": "x"},
        )
        + b"{not json\n"
    )
    report = preferences_import(project=project, content=content)
    assert not report.ok
    assert [error["line"] for error in report.errors] == [2, 3, 4]
    assert "rejected" in report.errors[0]["reason"] and "invalid JSON" in report.errors[2]["reason"]
    assert not Prompt.objects.filter(project=project).exists()
    assert not Ranking.objects.exists()

    skipping = preferences_import(project=project, content=content, skip_invalid=True)
    assert skipping.ok and skipping.rankings == 1 and len(skipping.skipped_lines) == 3


def test_identical_answers_make_no_prompt_and_every_bad_line_is_counted(project):
    from rewards.services.imports import MAX_ERRORS_REPORTED

    report = preferences_import(
        project=project, content=_jsonl({"prompt": "p", "chosen": "Same", "rejected": "Same "})
    )
    assert report.ok and report.identical == 1 and report.prompts_created == 0
    assert not Prompt.objects.filter(project=project).exists()
    bad = preferences_import(project=project, content=b"{not json\n" * (MAX_ERRORS_REPORTED + 5))
    assert bad.bad_lines == MAX_ERRORS_REPORTED + 5 and len(bad.errors) == MAX_ERRORS_REPORTED + 1


def test_hh_rlhf_transcripts_import_with_the_prompt_up_to_the_last_assistant_turn(project):
    transcript = (
        "\n\nHuman: How do I boil an egg?\n\nAssistant: In water.\n\nHuman: For how long?\n\nAssistant:"
    )
    content = _jsonl(
        {"chosen": transcript + " About nine minutes.", "rejected": transcript + " Forever."},
    )
    report = preferences_import(project=project, content=content)
    assert report.ok and report.rankings == 1
    prompt = Prompt.objects.get(project=project)
    assert prompt.turns == [
        {"role": "user", "content": "How do I boil an egg?"},
        {"role": "assistant", "content": "In water."},
        {"role": "user", "content": "For how long?"},
    ]
    ranking = Ranking.objects.get()
    texts = [Candidate.objects.get(pk=group[0]).text for group in ranking.order]
    assert texts == ["About nine minutes.", "Forever."]


@pytest.mark.shared_data
def test_the_shared_hh_rlhf_file_through_the_management_command(project):
    # The real file has 5 unusable lines (an empty answer, answers to different conversations):
    # all or nothing refuses it and names them; --skip-invalid imports the rest.
    with pytest.raises(CommandError, match="5 bad line"):
        call_command(
            "import_preferences", str(project.pk), str(HH_FILE), stderr=StringIO(), stdout=StringIO()
        )
    assert not Ranking.objects.exists()
    out, err = StringIO(), StringIO()
    call_command("import_preferences", project.name, str(HH_FILE), "--skip-invalid", stdout=out, stderr=err)
    summary = json.loads(out.getvalue())
    assert summary["rankings"] == 1151 and "skipped line 47" in err.getvalue()
    assert Ranking.objects.filter(prompt__project=project, source="import").count() == 1151
    assert Comparison.objects.filter(prompt__project=project).count() == 1151
