"""Export formats and filters, through the service and the API, on data made by the ranking service."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, timedelta

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation.exports.filters import LabelerNames
from annotation.models import Candidate, Comparison, Membership, Ranking
from annotation.models.projects import Role
from annotation.services.exports import export_request_validate, export_stream
from config.errors import ValidationFailed
from tests.annotation.export_data import demonstration_make, ranked_prompt

AGREE = [[0], [1], [2], [3]]
SWAP = [[1], [0], [2], [3]]  # disagrees with AGREE on one pair of six


def export_rows(project, export_format, filters=None, file_format="jsonl"):
    request = export_request_validate(
        project=project, export_format=export_format, file_format=file_format, filters=filters
    )
    data = b"".join(export_stream(request=request))
    if file_format == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    if file_format == "jsonl.gz":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.fixture
def data(project, labeler, other_labeler):
    """Prompt 0: both agree; prompt 1: one swap; prompt 2 ranked by alice only, with a flagged answer."""
    p0, c0 = ranked_prompt(project, 0, [labeler, other_labeler], [AGREE, AGREE])
    p1, c1 = ranked_prompt(project, 1, [labeler, other_labeler], [AGREE, SWAP])
    p2, c2 = ranked_prompt(project, 2, [labeler], [[[0, 1], [2], [3]]], flags={3: ["hallucination"]})
    demonstration_make(p0, labeler, "A careful demonstration for question 0.")
    demonstration_make(p1, other_labeler, "Another demonstration, for question 1.")
    return {"prompts": [p0, p1, p2], "candidates": [c0, c1, c2]}


def test_pairs_plain_text(data, project):
    rows = export_rows(project, "pairs")
    assert len(rows) == Comparison.objects.count() == 6 + 6 + 6 + 6 + 5
    first = next(r for r in rows if r["prompt_id"] == data["prompts"][0].pk and r["labeler"] == "alice")
    assert first["prompt"] == "Question 0?"
    assert first["chosen"] == "Answer 0.0" and first["rejected"] == "Answer 0.1"
    assert {"prompt", "chosen", "rejected", "chosen_id", "rejected_id", "ranking_id", "created_at"} <= set(
        first
    )
    # The database formats the time; it must read exactly as Python's isoformat() in UTC.
    stored = Comparison.objects.get(
        ranking_id=first["ranking_id"], better_id=first["chosen_id"], worse_id=first["rejected_id"]
    )
    assert first["created_at"] == stored.created_at.astimezone(UTC).isoformat()
    Comparison.objects.filter(pk=stored.pk).update(created_at=stored.created_at.replace(microsecond=0))
    again = next(
        r
        for r in export_rows(project, "pairs")
        if r["chosen_id"] == first["chosen_id"]
        and r["ranking_id"] == first["ranking_id"]
        and r["rejected_id"] == first["rejected_id"]
    )
    assert again["created_at"] == stored.created_at.replace(microsecond=0).astimezone(UTC).isoformat()


def test_pairs_conversational(data, project):
    rows = export_rows(project, "pairs_conversational")
    row = rows[0]
    assert row["prompt"] == [{"role": "user", "content": "Question 0?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "Answer 0.0"}]
    assert row["rejected"][0]["role"] == "assistant"


def test_multi_turn_prompt_renders_as_transcript_in_plain_text(project, labeler):
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a colour."},
    ]
    ranked_prompt(project, 9, [labeler], [AGREE], turns=turns)
    row = export_rows(project, "pairs")[0]
    assert row["prompt"] == (
        "\n\nSystem: Be brief.\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a colour.\n\nAssistant:"
    )
    hh = export_rows(project, "hh_rlhf")[0]
    assert hh["chosen"].endswith("\n\nHuman: Name a colour.\n\nAssistant: Answer 9.0")


def test_hh_rlhf(data, project):
    row = export_rows(project, "hh_rlhf")[0]
    assert row["chosen"] == "\n\nHuman: Question 0?\n\nAssistant: Answer 0.0"
    assert row["rejected"] == "\n\nHuman: Question 0?\n\nAssistant: Answer 0.1"
    assert "prompt" not in row


def test_sft_forms(data, project):
    plain = export_rows(project, "sft")
    assert [(r["prompt"], r["completion"]) for r in plain] == [
        ("Question 0?", "A careful demonstration for question 0."),
        ("Question 1?", "Another demonstration, for question 1."),
    ]
    conversational = export_rows(project, "sft_conversational")[0]
    assert conversational["prompt"] == [{"role": "user", "content": "Question 0?"}]
    assert conversational["completion"] == [
        {"role": "assistant", "content": "A careful demonstration for question 0."}
    ]
    messages = export_rows(project, "sft_messages")[1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["content"] == "Another demonstration, for question 1."


def test_rankings_full(data, project):
    rows = export_rows(project, "rankings")
    assert [r["prompt_id"] for r in rows] == [p.pk for p in data["prompts"]]
    second = rows[1]
    ids = [c.pk for c in data["candidates"][1]]
    assert [c["id"] for c in second["candidates"]] == ids
    assert second["candidates"][0]["model_name"] == "gemma-test"
    assert json.loads(second["candidates"][0]["sampling_params"]) == {"temperature": 0.9}
    Candidate.objects.filter(pk=ids[3]).update(finish_reason="length")
    reasons = [c["finish_reason"] for c in export_rows(project, "rankings")[1]["candidates"]]
    assert reasons == ["", "", "", "length"]
    assert [r["labeler"] for r in second["rankings"]] == ["alice", "bob"]
    assert second["rankings"][1]["order"] == [[ids[1]], [ids[0]], [ids[2]], [ids[3]]]
    assert second["rankings"][0]["items"][0] == {"candidate_id": ids[0], "rank": 0, "rating": 7, "flags": []}
    assert second["agreement"] == pytest.approx(5 / 6)
    # Two rankings disagree on (0, 1): a zero margin, so the consensus ties them.
    assert second["consensus_order"] == [[ids[0], ids[1]], [ids[2]], [ids[3]]]
    third = rows[2]
    flagged = [i for i in third["rankings"][0]["items"] if i["flags"]]
    assert flagged == [
        {"candidate_id": data["candidates"][2][3].pk, "rank": 2, "rating": 2, "flags": ["hallucination"]}
    ]
    assert third["agreement"] is None


def test_filter_date_range(data, project):
    old = timezone.now() - timedelta(days=40)
    Comparison.objects.filter(prompt=data["prompts"][0]).update(created_at=old)
    Ranking.objects.filter(prompt=data["prompts"][0]).update(created_at=old)
    recent = export_rows(
        project, "pairs", {"date_from": (timezone.now() - timedelta(days=7)).date().isoformat()}
    )
    assert data["prompts"][0].pk not in {r["prompt_id"] for r in recent}
    assert len(recent) == 17
    early = export_rows(project, "rankings", {"date_to": (old + timedelta(days=1)).date().isoformat()})
    assert [r["prompt_id"] for r in early] == [data["prompts"][0].pk]


def test_filter_labelers(data, project, other_labeler):
    rows = export_rows(project, "pairs", {"labelers": [other_labeler.pk]})
    assert {r["labeler"] for r in rows} == {"bob"} and len(rows) == 12
    demos = export_rows(project, "sft", {"labelers": [other_labeler.pk]})
    assert [d["labeler"] for d in demos] == ["bob"]


def test_filter_min_agreement(data, project):
    rows = export_rows(project, "pairs", {"min_agreement": 0.9})
    assert {r["prompt_id"] for r in rows} == {data["prompts"][0].pk}  # 1.0 passes, 5/6 fails, single fails
    rows = export_rows(project, "pairs", {"min_agreement": 0.8})
    assert {r["prompt_id"] for r in rows} == {data["prompts"][0].pk, data["prompts"][1].pk}
    rankings = export_rows(project, "rankings", {"min_agreement": 0.9})
    assert [r["prompt_id"] for r in rankings] == [data["prompts"][0].pk]


def test_filter_consensus_only(data, project):
    rows = export_rows(project, "pairs", {"consensus_only": True})
    by_prompt = {}
    for row in rows:
        by_prompt.setdefault(row["prompt_id"], set()).add((row["chosen_id"], row["rejected_id"]))
        assert row["labeler"] == "consensus" and row["ranking_id"] is None
    ids = [c.pk for c in data["candidates"][1]]
    # Prompt 1: the contested (0, 1) pair drops out; the other five are agreed.
    assert by_prompt[data["prompts"][1].pk] == {
        (ids[0], ids[2]),
        (ids[0], ids[3]),
        (ids[1], ids[2]),
        (ids[1], ids[3]),
        (ids[2], ids[3]),
    }
    assert len(by_prompt[data["prompts"][0].pk]) == 6
    rankings = export_rows(project, "rankings", {"consensus_only": True})
    assert all(r["rankings"] == [] and r["consensus_order"] for r in rankings)


def test_filter_exclude_flagged(data, project):
    flagged = data["candidates"][2][3].pk
    rows = export_rows(project, "pairs", {"exclude_flagged": True})
    assert all(flagged not in (r["chosen_id"], r["rejected_id"]) for r in rows)
    assert len(rows) == 24 + 2  # prompt 2 keeps (0,2) and (1,2)
    ranking = export_rows(project, "rankings", {"exclude_flagged": True})[2]
    assert flagged not in [c["id"] for c in ranking["candidates"]]
    assert all(flagged not in group for group in ranking["rankings"][0]["order"])


def test_exclude_flagged_drops_flagged_demonstrations(project, labeler, other_labeler):
    prompt, candidates = ranked_prompt(project, 5, [labeler], [AGREE], flags={0: ["harmful_advice"]})
    demo = demonstration_make(prompt, other_labeler, "Do something harmful, at length.")
    candidates[0].demonstration = demo
    candidates[0].save(update_fields=["demonstration"])
    assert len(export_rows(project, "sft")) == 1
    assert export_rows(project, "sft", {"exclude_flagged": True}) == []


def test_anonymise_is_keyed_by_the_server_secret_and_the_project(data, project, labeler, settings):
    settings.EXPORT_PSEUDONYM_KEY = "server-secret-one"
    first = export_rows(project, "pairs", {"anonymise": True})
    again = export_rows(project, "pairs", {"anonymise": "true"})
    names = {r["labeler"] for r in first}
    assert len(names) == 2 and all(n.startswith("labeler-") for n in names)
    assert [r["labeler"] for r in first] == [r["labeler"] for r in again]  # stable within the project
    # Nobody without the server secret can recompute them from the (small, guessable) user ids.
    settings.EXPORT_PSEUDONYM_KEY = "server-secret-two"
    assert names.isdisjoint({r["labeler"] for r in export_rows(project, "pairs", {"anonymise": True})})
    # Another project gives the same labeler another pseudonym: exports cannot be joined on it.
    assert LabelerNames(anonymise=True, project_id=project.pk).pseudonym(labeler.pk) != LabelerNames(
        anonymise=True, project_id=project.pk + 1
    ).pseudonym(labeler.pk)
    text = json.dumps(export_rows(project, "rankings", {"anonymise": True}))
    assert "alice" not in text and "bob" not in text
    assert {r["labeler"] for r in export_rows(project, "pairs")} == {"alice", "bob"}


def test_a_seed_is_refused_not_ignored(data, project):
    with pytest.raises(ValidationFailed, match="anonymise=true"):
        export_rows(project, "pairs", {"anonymise_seed": "s1"})


@pytest.mark.parametrize("file_format", ["jsonl.gz", "parquet"])
@pytest.mark.parametrize(
    "export_format", ["pairs", "pairs_conversational", "hh_rlhf", "sft_messages", "rankings"]
)
def test_file_formats_hold_the_same_rows(data, project, file_format, export_format):
    assert export_rows(project, export_format, file_format=file_format) == export_rows(project, export_format)


@pytest.mark.parametrize(
    ("export_format", "file_format", "filters", "code"),
    [
        ("nope", "jsonl", {}, "invalid_export_format"),
        ("pairs", "csv", {}, "invalid_file_format"),
        ("pairs", "jsonl", {"colour": "red"}, "invalid_filter"),
        ("pairs", "jsonl", {"date_from": "yesterday"}, "invalid_filter"),
        ("pairs", "jsonl", {"date_from": "2024-05-02", "date_to": "2024-05-01"}, "invalid_filter"),
        ("pairs", "jsonl", {"min_agreement": 1.5}, "invalid_filter"),
        ("pairs", "jsonl", {"min_agreement": "most"}, "invalid_filter"),
        ("pairs", "jsonl", {"labelers": ["alice"]}, "invalid_filter"),
        ("pairs", "jsonl", {"consensus_only": "maybe"}, "invalid_filter"),
        ("sft", "jsonl", {"consensus_only": True}, "invalid_filter"),
    ],
)
def test_invalid_requests_are_refused(project, export_format, file_format, filters, code):
    with pytest.raises(ValidationFailed) as error:
        export_request_validate(
            project=project, export_format=export_format, file_format=file_format, filters=filters
        )
    assert error.value.code == code


@pytest.fixture
def project_admin(project, django_user_model, password):
    user = django_user_model.objects.create_user("carol", "carol@example.com", password)
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return user


def test_api_stream_download(data, project, project_admin, api_client):
    api_client.force_authenticate(project_admin)
    response = api_client.get(
        f"/api/projects/{project.pk}/exports/stream",
        {
            "export_format": "pairs",
            "file_format": "jsonl.gz",
            "min_agreement": "0.9",
            "labelers": "",
            "anonymise": "true",
        },
    )
    assert response.status_code == 200, response.content
    assert response.streaming
    assert response["Content-Disposition"].endswith('.jsonl.gz"')
    rows = [json.loads(line) for line in gzip.decompress(b"".join(response.streaming_content)).splitlines()]
    assert len(rows) == 12 and all(r["labeler"].startswith("labeler-") for r in rows)


def test_api_stream_refuses_a_seed_in_the_url(data, project, project_admin, api_client):
    api_client.force_authenticate(project_admin)
    for path in ("stream", "count"):
        response = api_client.get(
            f"/api/projects/{project.pk}/exports/{path}", {"export_format": "pairs", "anonymise_seed": "x"}
        )
        assert response.status_code == 400 and "anonymise_seed" in response.json()["error"]["details"]


def test_api_stream_refuses_bad_input_with_the_error_shape(data, project, project_admin, api_client):
    api_client.force_authenticate(project_admin)
    response = api_client.get(
        f"/api/projects/{project.pk}/exports/stream", {"export_format": "pairs", "date_from": "x"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_filter"
    response = api_client.get(f"/api/projects/{project.pk}/exports/stream", {"export_format": "bogus"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


def test_dashboard_download_streams(data, project, project_admin, client):
    client.force_login(project_admin)
    response = client.get(
        f"/dashboard/projects/{project.pk}/exports/download",
        {"export_format": "rankings", "file_format": "parquet", "exclude_flagged": "on"},
    )
    assert response.status_code == 200 and response.streaming
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.num_rows == 3
    bad = client.get(f"/dashboard/projects/{project.pk}/exports/download", {"export_format": "nope"})
    assert bad.status_code == 400 and b"unknown export format" in bad.content


def test_management_command(data, project, labeler, tmp_path):
    out = tmp_path / "pairs.parquet"
    call_command(
        "export_dataset",
        "--project",
        str(project.pk),
        "--format",
        "pairs",
        "-o",
        str(out),
        "--labeler",
        "alice",
    )
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 17 and {r["labeler"] for r in rows} == {"alice"}
    assert not list(tmp_path.glob("*.part"))
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no user"):
        call_command("export_dataset", "--project", str(project.pk), "--format", "pairs", "--labeler", "zed")
    with pytest.raises(CommandError, match="min_agreement"):
        call_command("export_dataset", "--project", project.name, "--format", "pairs", "--min-agreement", "2")
