"""The export form's row-count preview: the count the database gives equals the rows the export
writes, for every format and filter, and the API refuses bad filters as the stream does."""

from __future__ import annotations

import json

import pytest

from annotation.models import Membership
from annotation.models.projects import Role
from annotation.selectors.exports import export_rows_count
from annotation.services.exports import export_request_validate, export_stream
from tests.annotation.export_data import demonstration_make, ranked_prompt

AGREE = [[0], [1], [2], [3]]
SWAP = [[1], [0], [2], [3]]
REVERSED = [[3], [2], [1], [0]]


@pytest.fixture
def data(project, labeler, other_labeler):
    """Agreeing, mildly and wholly disagreeing prompts, a prompt ranked once with a flagged answer,
    and demonstrations, one of which became a candidate and was flagged."""
    p0, _ = ranked_prompt(project, 0, [labeler, other_labeler], [AGREE, AGREE])
    p1, _ = ranked_prompt(project, 1, [labeler, other_labeler], [AGREE, SWAP], flags={0: ["hallucination"]})
    ranked_prompt(project, 2, [labeler, other_labeler], [AGREE, REVERSED])
    ranked_prompt(project, 3, [labeler], [[[0, 1], [2], [3]]], flags={3: ["harmful_advice"]})
    demonstration_make(p0, labeler, "A careful demonstration for question 0.")
    flagged = demonstration_make(p1, other_labeler, "Another demonstration, for question 1.")
    candidate = p1.candidates.get(text="Answer 1.0")
    candidate.demonstration = flagged
    candidate.save(update_fields=["demonstration"])
    return project


def _written(project, export_format: str, filters: dict) -> int:
    request = export_request_validate(
        project=project, export_format=export_format, file_format="jsonl", filters=filters
    )
    return len(b"".join(export_stream(request=request)).splitlines())


def _counted(project, export_format: str, filters: dict) -> int:
    request = export_request_validate(
        project=project, export_format=export_format, file_format="jsonl", filters=filters
    )
    return export_rows_count(project=project, export_format=request.export_format, filters=request.filters)


RANKING_FILTERS = [
    {},
    {"exclude_flagged": True},
    {"min_agreement": 0.8},
    {"min_agreement": 0.8, "exclude_flagged": True},
    {"consensus_only": True},
    {"consensus_only": True, "exclude_flagged": True},
    {"consensus_only": True, "min_agreement": 0.5},
    {"date_from": "2000-01-01", "date_to": "2000-01-02"},
]


@pytest.mark.parametrize("export_format", ["pairs", "pairs_conversational", "hh_rlhf", "rankings"])
@pytest.mark.parametrize("filters", RANKING_FILTERS, ids=lambda f: ",".join(f) or "none")
def test_count_equals_the_rows_the_export_writes(data, export_format, filters):
    written = _written(data, export_format, filters)
    assert _counted(data, export_format, filters) == written


# Rows depend on the format's kind, not on how a row is rendered: one plain and one other pair format.
MATRIX_FORMATS = ["pairs", "pairs_implicit_conversational"]
PAIR_OPTIONS = [
    {"pair_policy": "adjacent"},
    {"pair_policy": "best_vs_rest", "tie_policy": "keep"},
    {"tie_policy": "keep", "margin": True},
    {"margin": True, "test_fraction": 0.3},
]


@pytest.mark.parametrize("export_format", MATRIX_FORMATS)
@pytest.mark.parametrize("options", PAIR_OPTIONS, ids=lambda f: ",".join(f))
@pytest.mark.parametrize("filters", RANKING_FILTERS, ids=lambda f: ",".join(f) or "none")
def test_pair_options_count_equals_the_rows_written(data, export_format, options, filters):
    merged = {**filters, **options}
    assert _counted(data, export_format, merged) == _written(data, export_format, merged)


@pytest.mark.parametrize("export_format", ["kto"])
@pytest.mark.parametrize(
    "options",
    [{}, {"kto_from": "ratings"}, {"kto_from": "ratings", "desirable_rating": 6, "undesirable_rating": 2}],
    ids=["rankings", "ratings", "thresholds"],
)
@pytest.mark.parametrize("filters", RANKING_FILTERS, ids=lambda f: ",".join(f) or "none")
def test_kto_count_equals_the_rows_written(data, export_format, options, filters):
    merged = {**filters, **options}
    assert _counted(data, export_format, merged) == _written(data, export_format, merged)


@pytest.mark.parametrize("export_format", ["prompt_only", "prompt_only_conversational"])
@pytest.mark.parametrize(
    "filters", [{}, {"date_from": "2000-01-01", "date_to": "2000-01-02"}, {"test_fraction": 0.5}]
)
def test_prompt_only_count_equals_the_rows_written(data, export_format, filters):
    assert _counted(data, export_format, filters) == _written(data, export_format, filters)


def test_matrix_counts_follow_the_options(data):
    """The figures: 4 prompts, 7 rankings of 4 answers (one with 0 and 1 tied), 2 flagged answers."""
    assert _counted(data, "pairs", {"tie_policy": "keep"}) == 3 * (6 + 6) + 5 + 1
    assert _counted(data, "pairs", {"pair_policy": "adjacent"}) == 6 * 3 + 3  # tied top: 0>2, 1>2, 2>3
    assert _counted(data, "kto", {}) == 7 * 2 + 1  # top and bottom of each; the tied top gives two
    assert _counted(data, "prompt_only", {}) == 4


@pytest.mark.parametrize("export_format", ["sft", "sft_conversational", "sft_messages"])
@pytest.mark.parametrize("filters", [{}, {"exclude_flagged": True}], ids=["none", "exclude_flagged"])
def test_demonstration_counts_equal_the_rows_written(data, export_format, filters):
    assert _counted(data, export_format, filters) == _written(data, export_format, filters)


def test_counts_follow_the_filters(data, labeler):
    """The figures themselves, so that a count and an export wrong in the same way cannot pass."""
    assert _counted(data, "pairs", {}) == 3 * (6 + 6) + 5
    assert _counted(data, "pairs", {"labelers": [labeler.pk]}) == 4 * 6 - 1
    assert _counted(data, "rankings", {}) == 4
    assert _counted(data, "rankings", {"min_agreement": 0.8}) == 2  # prompts 0 (6/6) and 1 (5/6)
    assert _counted(data, "sft", {}) == 2 and _counted(data, "sft", {"exclude_flagged": True}) == 1


def test_counting_reads_no_answer_text(data, django_assert_max_num_queries):
    request = export_request_validate(project=data, export_format="pairs", file_format="jsonl", filters={})
    with django_assert_max_num_queries(1):
        export_rows_count(project=data, export_format=request.export_format, filters=request.filters)


@pytest.fixture
def project_admin(project, django_user_model, password):
    user = django_user_model.objects.create_user("carol", "carol@example.com", password)
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return user


def test_api_counts_with_the_query_the_download_takes(data, project_admin, labeler, api_client):
    api_client.force_authenticate(project_admin)
    url = f"/api/projects/{data.pk}/exports/count"
    response = api_client.get(
        url,
        {
            "export_format": "pairs",
            "file_format": "parquet",
            "labelers": str(labeler.pk),
            "min_agreement": "0.5",
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rows"] == _written(data, "pairs", {"labelers": [labeler.pk], "min_agreement": 0.5})
    assert body["row_kind"] == "pairs"
    assert body["filters"] == {"labelers": [labeler.pk], "min_agreement": 0.5}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"export_format": "pairs", "date_from": "yesterday"}, "invalid_filter"),
        ({"export_format": "pairs", "date_from": "2024-05-02", "date_to": "2024-05-01"}, "invalid_filter"),
        ({"export_format": "sft", "consensus_only": "true"}, "invalid_filter"),
        ({"export_format": "pairs", "labelers": "alice"}, "invalid_filter"),
        ({"export_format": "bogus"}, "invalid"),
        ({"export_format": "pairs", "min_agreement": "2"}, "invalid"),
    ],
)
def test_api_refuses_bad_filters_with_the_error_shape(data, project_admin, api_client, query, code):
    api_client.force_authenticate(project_admin)
    response = api_client.get(f"/api/projects/{data.pk}/exports/count", query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    stream = api_client.get(f"/api/projects/{data.pk}/exports/stream", query)
    assert stream.status_code == 400 and json.loads(stream.content)["error"]["code"] == code


def test_api_is_for_project_admins(data, labeler, api_client):
    api_client.force_authenticate(labeler)
    assert (
        api_client.get(f"/api/projects/{data.pk}/exports/count", {"export_format": "pairs"}).status_code
        == 403
    )
