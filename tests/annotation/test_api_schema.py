"""The OpenAPI schema generates without warnings, documents every /api/ endpoint and its errors, and
every list is paginated. (tests/fuzz/ checks the server against it.)"""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from annotation.models import Membership
from annotation.models.projects import Role


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.json"
    with django_db_blocker.unblock():
        # --fail-on-warn turns any drf-spectacular warning (an unresolvable serializer, a missing
        # type hint, a duplicated operation id) into an error; --validate checks it against OpenAPI 3.
        call_command(
            "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(path)
        )
    return json.loads(path.read_text())


def _resolve(schema, node):
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def test_every_list_endpoint_is_paginated(schema):
    unpaginated = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method != "get":
                continue
            for code, response in operation.get("responses", {}).items():
                if not code.startswith("2"):
                    continue
                for media in response.get("content", {}).values():
                    body = _resolve(schema, media.get("schema", {}))
                    if body.get("type") == "array":
                        unpaginated.append(f"GET {path}")
                    elif body.get("type") == "object" and "results" in body.get("properties", {}):
                        assert {"count", "next", "previous"} <= set(body["properties"]), path
    assert not unpaginated, f"list endpoints without pagination: {unpaginated}"


def test_export_and_quality_endpoints_are_documented(schema):
    operation_ids = {op.get("operationId") for ops in schema["paths"].values() for op in ops.values()}
    for operation_id in [
        "export_stream",
        "export_count",
        "export_job_start",
        "export_job_list",
        "export_job_detail",
        "export_job_download",
        "quality_summary",
        "quality_labelers",
        "quality_prompts",
        "quality_throughput",
        "quality_agreement_over_time",
        "quality_queue_depth",
        "quality_reward_model_history",
        "ranking_gold_set",
        "prompt_reward_scores",
        "reward_model_active_list",
    ]:
        assert operation_id in operation_ids
    stream = schema["paths"]["/api/projects/{project_id}/exports/stream"]["get"]
    parameters = {p["name"] for p in stream["parameters"]}
    assert {"export_format", "file_format", "min_agreement", "consensus_only", "anonymise"} <= parameters
    formats = next(p for p in stream["parameters"] if p["name"] == "export_format")
    assert "pairs_conversational" in _resolve(schema, formats["schema"])["enum"]
    # The row count takes the download's query, so the export form can send the same to both.
    count = schema["paths"]["/api/projects/{project_id}/exports/count"]["get"]
    assert parameters <= {p["name"] for p in count["parameters"]}
    counted = _resolve(schema, count["responses"]["200"]["content"]["application/json"]["schema"])
    assert {"rows", "row_kind", "filters"} <= set(counted["properties"])
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_every_operation_documents_its_errors_with_the_one_error_shape(schema):
    """config.openapi adds the error responses each operation can answer, all with the Error body."""
    error = _resolve(schema, {"$ref": "#/components/schemas/Error"})
    assert error["required"] == ["error"]
    assert _resolve(schema, error["properties"]["error"])["required"] == ["code", "message"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"401", "403", "429", "503"}
            if not path.endswith(("/download", "/stream")):  # these serve their file whatever Accept says
                expected.add("406")
            if "{" in path:
                expected.add("404")
            if "requestBody" in operation:
                expected |= {"400", "413", "415"}
            if method != "get":
                expected.add("409")
            assert expected <= set(responses), f"{method.upper()} {path}: {sorted(responses)}"
            for code in expected:
                content = responses[code]["content"]
                assert content == {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            for code in ("429", "503"):
                assert "Retry-After" in responses[code]["headers"], f"{method.upper()} {path} {code}"
    # A GET without a body or filters has no 400 to document; a list's limit and offset never refuse.
    assert "400" not in schema["paths"]["/api/labeler/me/"]["get"]["responses"]
    assert "400" not in schema["paths"]["/api/projects/{project_id}/exports/"]["get"]["responses"]
    assert "404" in schema["paths"]["/api/labeler/assignments/lease/"]["post"]["responses"]


def test_file_downloads_document_each_format_s_content_type(schema):
    for path in ["/api/projects/{project_id}/exports/stream", "/api/exports/{job_id}/download"]:
        responses = schema["paths"][path]["get"]["responses"]
        content = responses["200"]["content"]
        formats = {
            "application/x-ndjson",
            "application/gzip",
            "application/vnd.apache.parquet",
            "application/x-tar",
        }
        # A job's download may be the zip of split files (split_output=files).
        assert set(content) == formats | ({"application/zip"} if path.endswith("/download") else set())
        assert "406" not in responses


def test_a_download_that_asks_for_its_file_type_gets_it(api_client, admin_user, project):
    """Accept naming the file's type is served (DRF's negotiation answered 406), errors stay JSON."""
    Membership.objects.create(project=project, user=admin_user, role=Role.ADMIN)
    api_client.force_authenticate(admin_user)
    url = f"/api/projects/{project.pk}/exports/stream?export_format=pairs"
    served = api_client.get(f"{url}&file_format=jsonl.gz", HTTP_ACCEPT="application/gzip")
    assert served.status_code == 200 and served["Content-Type"] == "application/gzip"
    refused = api_client.get(f"{url}&file_format=csv", HTTP_ACCEPT="application/gzip")
    assert refused.status_code == 400 and refused["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "invalid"


def test_schema_and_docs_are_served(client, db):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_docs_page_loads_swagger_ui_from_our_own_static_files(client, db):
    """/api/docs/ works without internet: every script and style it names is served here."""
    import re

    from django.contrib.staticfiles import finders

    page = client.get("/api/docs/").content.decode()
    assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css))["']""", page)
    assert assets and not [url for url in assets if url.startswith(("http:", "https:", "//"))], assets
    for url in assets:
        path = url.split("/static/", 1)[1]
        assert finders.find(path), f"{url} is not among the static files"
