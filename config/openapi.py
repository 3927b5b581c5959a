"""The OpenAPI schema documents the API's errors as well as its successes.

Every error the API answers has one JSON shape (config.api.error_body), and which errors an
operation can answer follows from what the operation is: whoever may call it, whether it takes a
body or query parameters, whether its path names rows, whether it writes. The AutoSchema below adds
those responses to every operation, so that no view has to list them and none can forget one; a
view that documents a code itself keeps its own description. The fuzz test
(tests/fuzz/test_api_fuzz.py) holds the server to it: every status code it answers is documented.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

# Seconds to wait, sent with 429 (DRF's throttles) and 503 (config.middleware's outage response).
_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 0},
        "description": "Seconds to wait before trying again.",
    }
}
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A stable machine-readable code, e.g. not_found, invalid.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    details = serializers.JSONField(
        required=False, help_text="More about the error, e.g. the invalid fields; absent when there is none."
    )


class ErrorSerializer(serializers.Serializer):
    """`{"error": {"code", "message", "details"}}`: the body of every error the API answers."""

    error = ErrorDetailSerializer()


def error_response(description: str) -> OpenApiResponse:
    """An error response with the API's error body, for a view that documents a code of its own."""
    return OpenApiResponse(ErrorSerializer, description=description)


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, plus the error responses each operation can answer."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation["responses"]
        for code, description in self._error_codes(operation):
            if str(code) in responses:
                continue
            response = self._get_response_for_code(error_response(description), str(code))
            if code in (429, 503):
                response["headers"] = {**_RETRY_AFTER, **response.get("headers", {})}
            responses[str(code)] = response
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_codes(self, operation: dict[str, Any]) -> list[tuple[int, str]]:
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        paginator = self._get_paginator()
        paging = (
            {p["name"] for p in paginator.get_schema_operation_parameters(self.view)} if paginator else set()
        )
        # A page past the end or a limit that is not a number is served, never refused (config.api).
        has_query = any(p["in"] == "query" and p["name"] not in paging for p in parameters)
        names_rows = any(p["in"] == "path" for p in parameters)
        codes: list[tuple[int, str]] = []
        if has_body or has_query:
            codes.append((400, "The request is not valid; `details` names the fields and what is wrong."))
        if self.view.authentication_classes:
            codes.append((401, "No valid credentials: sign in, or send `Authorization: Token <key>`."))
            codes.append(
                (403, "The caller may not do this (their role in the project, or CSRF for a session).")
            )
        if names_rows:
            codes.append((404, "Nothing with that id that the caller may see."))
        # Unless the view serves whatever is asked for (a file download: annotation.api.exports).
        if getattr(self.view.content_negotiation_class, "refuses_unacceptable", True):
            codes.append((406, "None of the media types in the Accept header can be served."))
        if self.method in _WRITE_METHODS:
            codes.append((409, "The request conflicts with the current state of what it changes."))
        if has_body:
            codes.append(
                (413, "The request body is larger than the server accepts; `details` says how large.")
            )
            codes.append((415, "The body's Content-Type is not one the operation reads."))
        if self.view.throttle_classes:
            codes.append((429, "Too many requests; try again after Retry-After seconds."))
        codes.append(
            (503, "The database or the broker cannot be reached; try again after Retry-After seconds.")
        )
        return codes
