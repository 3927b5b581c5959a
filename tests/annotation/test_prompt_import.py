"""Prompt import: JSONL and CSV, duplicates skipped and counted, any bad line imports nothing."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from annotation.models import Project, Prompt
from annotation.selectors.projects import project_by_reference
from annotation.services.prompts import prompts_import
from tests.annotation.admin_forms import project_form_defaults


def _jsonl(*records) -> bytes:
    return "\n".join(json.dumps(record) for record in records).encode()


def test_jsonl_with_prompt_and_messages(project):
    content = _jsonl(
        {"prompt": "What is 2+2?", "tags": ["math"], "priority": 3, "source": "handwritten"},
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Tell me a joke."},
            ]
        },
    )
    report = prompts_import(project=project, content=content, filename="prompts.jsonl")
    assert report.as_dict() == {"imported": 2, "duplicates": 0, "errors": []}
    first = Prompt.objects.get(project=project, priority=3)
    assert first.turns == [{"role": "user", "content": "What is 2+2?"}]
    assert first.tags == ["math"] and first.source == "handwritten"
    multi = Prompt.objects.exclude(pk=first.pk).get()
    assert [turn["role"] for turn in multi.turns] == ["user", "assistant", "user"]
    assert multi.source == "prompts.jsonl"


def test_csv_with_prompt_and_messages_columns(project):
    content = (
        b"prompt,messages,tags,priority\n"
        b'"Why is the sea salty?",,"science, nature",1\n'
        b',"[{""role"": ""user"", ""content"": ""Plan a trip""}]",,\n'
    )
    report = prompts_import(project=project, content=content, filename="prompts.csv")
    assert report.as_dict() == {"imported": 2, "duplicates": 0, "errors": []}
    assert Prompt.objects.get(priority=1).tags == ["science", "nature"]


def test_duplicates_in_project_and_in_file_are_skipped_and_counted(project):
    prompts_import(project=project, content=_jsonl({"prompt": "Once"}), filename="a.jsonl")
    report = prompts_import(
        project=project,
        content=_jsonl({"prompt": "Once"}, {"prompt": "  Once  "}, {"prompt": "New"}, {"prompt": "New"}),
        filename="b.jsonl",
    )
    assert (report.imported, report.duplicates) == (1, 3)
    assert Prompt.objects.filter(project=project).count() == 2


def test_one_bad_line_imports_nothing_and_every_bad_line_is_named(project):
    content = b"\n".join(
        [
            json.dumps({"prompt": "Fine"}).encode(),
            b"{not json",
            json.dumps({"prompt": "Also fine", "priority": "high"}).encode(),
            json.dumps(
                {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
            ).encode(),
            json.dumps({"tags": ["no prompt"]}).encode(),
            b'{"prompt": "Huge", "priority": 1e400}',
        ]
    )
    report = prompts_import(project=project, content=content, filename="bad.jsonl")
    assert not report.ok and report.imported == 0
    assert [error["line"] for error in report.errors] == [2, 3, 4, 5, 6]
    assert "priority" in report.errors[4]["reason"]
    assert "invalid JSON" in report.errors[0]["reason"]
    assert "priority" in report.errors[1]["reason"]
    assert "last message must be from the user" in report.errors[2]["reason"]
    assert "missing 'prompt'" in report.errors[3]["reason"]
    assert Prompt.objects.count() == 0


def test_csv_without_prompt_column_is_refused(project):
    report = prompts_import(project=project, content=b"question\nWhy?\n", filename="x.csv")
    assert report.errors == [{"line": 1, "reason": "the header must have a 'prompt' or a 'messages' column"}]


def test_management_command_reports_counts_and_bad_lines(project, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_bytes(_jsonl({"prompt": "One"}, {"prompt": "Two"}, {"prompt": "One"}))
    out = StringIO()
    call_command("import_prompts", project.name, str(good), stdout=out)
    assert "imported 2, skipped 1 duplicate(s)" in out.getvalue()

    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,priority\nFine,1\n,2\n")
    err = StringIO()
    with pytest.raises(CommandError, match="1 bad line"):
        call_command("import_prompts", str(project.pk), str(bad), stderr=err)
    assert "line 3: missing 'prompt'" in err.getvalue()
    assert Prompt.objects.count() == 2


def test_every_command_names_a_project_by_id_or_by_name_alike(project, tmp_path):
    """One rule (annotation.selectors.projects.project_by_reference) for every management command: an
    id when one exists, else a name, so a project called "2024" is found by its name too."""
    from django.db.models import Max

    numbered = Project.objects.create(name=str((Project.objects.aggregate(top=Max("pk"))["top"] or 0) + 1000))
    assert project_by_reference(reference=str(project.pk)) == project
    assert project_by_reference(reference=project.name) == project
    assert project_by_reference(reference=numbered.name) == numbered  # no project has that id
    assert project_by_reference(reference="no such project") is None
    data = tmp_path / "p.jsonl"
    data.write_bytes(_jsonl({"prompt": "Hello"}))
    for command, *arguments in [
        ("import_prompts", "no such project", str(data)),
        ("import_preferences", "no such project", str(data)),
        ("export_dataset", "--project", "no such project", "--format", "sft"),
        ("evaluate_reward_models", "no such project"),
    ]:
        with pytest.raises(CommandError, match="no project with id or name 'no such project'"):
            call_command(command, *arguments, stdout=StringIO(), stderr=StringIO())


def test_admin_upload_imports_and_reports(client, admin_user, password, project):
    client.login(username=admin_user.username, password=password)
    url = f"/admin/annotation/project/{project.pk}/import/"
    upload = SimpleUploadedFile("p.jsonl", _jsonl({"prompt": "From the admin"}, {"prompt": "From the admin"}))
    response = client.post(url, {"file": upload}, follow=True)
    assert response.status_code == 200
    assert "Imported 1 prompt(s); skipped 1 duplicate(s)." in response.content.decode()

    bad = SimpleUploadedFile("p.jsonl", b'{"prompt": "ok"}\n[1, 2]\n')
    response = client.post(url, {"file": bad})
    body = response.content.decode()
    assert "Nothing was imported" in body and "each line must be a JSON object" in body
    assert Prompt.objects.filter(project=project).count() == 1


def test_labeler_cannot_open_the_admin_upload(client, labeler, password, project):
    client.login(username=labeler.username, password=password)
    response = client.get(f"/admin/annotation/project/{project.pk}/import/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_demo_prompts_are_valid_and_many(project):
    from annotation.management.commands.seed_demo import DEMO_PROMPTS

    report = prompts_import(project=project, content=DEMO_PROMPTS.read_bytes(), filename="prompts.jsonl")
    assert report.ok and report.imported >= 50 and report.duplicates == 0


def _project_form_data(project, **changes):
    data = {
        **project_form_defaults(project),
        "name": project.name,
        "k": 4,
        "rankings_per_prompt": 2,
        "demonstrations_per_prompt": 1,
        "min_demonstration_chars": 20,
        "lease_seconds": 1800,
        "generation_backend": "embedded",
        "temperature": 0.9,
        "top_p": 0.95,
        "max_tokens": 96,
        "stop_sequences": "[]",
        "low_water_mark": 0,
        "retrain_min_new_comparisons": 500,
        "reward_model_config": "{}",
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
    }
    data.update(changes)
    return data


def test_admin_project_form_refuses_bad_settings_and_keeps_the_stored_key(
    client, admin_user, password, project, settings
):
    settings.GENERATION_ALLOWED_HOSTS = ["*", "127.0.0.1"]
    project.generation_base_url = "http://127.0.0.1:9/v1"
    project.generation_api_key = "sk-stored"
    project.save()
    client.login(username=admin_user.username, password=password)
    url = f"/admin/annotation/project/{project.pk}/change/"
    response = client.post(url, _project_form_data(project, generation_backend="openai", k=12))
    body = response.content.decode()
    assert response.status_code == 200  # the form again, with errors
    assert "needs the server&#x27;s base URL" in body and "needs the model name" in body
    response = client.post(url, _project_form_data(project, reward_model_config='{"no_such_setting": 1}'))
    assert (
        response.status_code == 200
        and "unknown reward-model setting(s): no_such_setting" in response.content.decode()
    )
    project.refresh_from_db()
    assert (project.k, project.generation_backend, project.reward_model_config) == (4, "embedded", {})

    response = client.post(
        url,
        _project_form_data(
            project,
            generation_backend="openai",
            generation_base_url="http://127.0.0.1:9/v1",
            generation_model="m",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    project.refresh_from_db()
    assert project.generation_backend == "openai" and project.generation_api_key == "sk-stored"
    assert "sk-stored" not in client.get(url).content.decode()


def test_nul_lone_surrogates_and_bytes_not_utf8_are_named_by_line(project):
    jsonl = b"\n".join(
        [
            b'{"prompt": "fine"}',
            b'{"prompt": "a \\u0000 b"}',
            b'{"prompt": "lone \\ud800"}',
            b'{"messages": [{"role": "user", "content": "x"}], "tags": ["t\\u0000"]}',
            b'{"prompt": "latin-1 \xe9t\xe9"}',
            b'{"prompt": "pair \\ud83d\\ude00 is fine"}',
        ]
    )
    report = prompts_import(project=project, content=jsonl, filename="p.jsonl")
    assert [(error["line"], error["reason"]) for error in report.errors] == [
        (2, "text that cannot be stored: a NUL character at position 2 in $.prompt"),
        (
            3,
            "text that cannot be stored: a lone surrogate or bytes that are not UTF-8 at position 5 in $.prompt",
        ),
        (4, "text that cannot be stored: a NUL character at position 1 in $.tags[0]"),
        (
            5,
            "text that cannot be stored: a lone surrogate or bytes that are not UTF-8 at position 8 in $.prompt",
        ),
    ]
    csv_content = b"prompt,source\nfine,s\nnul \x00 here,s\nok,bad \xff source\n"
    report = prompts_import(project=project, content=csv_content, filename="p.csv")
    assert [(error["line"], error["reason"][:40]) for error in report.errors] == [
        (3, "text that cannot be stored: a NUL charac"),
        (4, "text that cannot be stored: a lone surro"),
    ]
    assert Prompt.objects.count() == 0


def test_batches_are_all_or_nothing_and_find_duplicates_across_batches(project, monkeypatch):
    from annotation.services import prompts as prompt_services

    monkeypatch.setattr(prompt_services, "CHUNK_ROWS", 3)  # many batches from a small file
    prompts_import(project=project, content=_jsonl({"prompt": "Q7"}), filename="a.jsonl")
    lines = [{"prompt": f"Q{index % 8}"} for index in range(20)]  # Q0..Q7 repeat across batches
    report = prompts_import(project=project, content=_jsonl(*lines), filename="b.jsonl")
    assert (report.imported, report.duplicates, report.errors) == (7, 13, [])
    assert Prompt.objects.filter(project=project).count() == 8

    # Bad lines after batches were written: those batches are rolled back, every bad line named.
    lines = [{"prompt": f"New {index}"} for index in range(10)] + [
        {"prompt": ""},
        {"prompt": "x", "priority": "y"},
    ]
    report = prompts_import(project=project, content=_jsonl(*lines), filename="c.jsonl")
    assert [error["line"] for error in report.errors] == [11, 12] and report.imported == 0
    assert Prompt.objects.filter(project=project).count() == 8

    report = prompts_import(
        project=project, content=_jsonl(*lines[:10], *lines[:4]), filename="d.jsonl", dry_run=True
    )
    assert (report.imported, report.duplicates) == (10, 4)
    assert Prompt.objects.filter(project=project).count() == 8
