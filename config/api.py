"""What every app's API shares: one JSON error shape for every error, domain or framework, the JSON
parser and the pagination. config.middleware gives the same shape to what never reaches a DRF view."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404
from rest_framework import exceptions, pagination, parsers, status
from rest_framework.exceptions import ParseError
from rest_framework.response import Response

from config.errors import DomainError, ValidationFailed
from config.text import value_text_problem

# The most rows one page of any list holds. Without a bound, `?limit=` went straight into the SQL
# LIMIT, and a number past 64 bits was a 500 (an overflow in the driver) instead of a page.
MAX_PAGE_SIZE = 500


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES, which names this module's
    # parser, as it loads; at the top this module could not be imported before DRF's views.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(body_too_large_error(), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return Response(error_body("too_many_fields", str(exc)), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", "The request is not valid.", response.data)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response.data = error_body(str(exc.default_code), detail)
    if response.status_code == status.HTTP_500_INTERNAL_SERVER_ERROR:
        response.data = error_body("server_error", "Internal error.")
    return response


def body_too_large_error() -> dict[str, Any]:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_body(
        "body_too_large",
        "The request body is larger than the server accepts.",
        {"max_bytes": limit},
    )


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a body nested too deeply for Python answered as a 400, not a 500, and
    text the database cannot store (NUL, lone surrogates; see config.text) refused for the whole API
    with a 400 `invalid_text` naming where it is, before any view or query sees it."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type=media_type, parser_context=parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply") from None
        found = value_text_problem(data)
        if found:
            where, problem = found
            raise ValidationFailed(
                f"The body holds text that cannot be stored: {problem} in {where}.",
                code="invalid_text",
                details={"where": where, "reason": problem},
            )
        return data


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=&offset=` for every list; a limit above MAX_PAGE_SIZE is served as MAX_PAGE_SIZE
    (DRF's clamp: the page's `next` link goes on from there), and a limit or offset that is not a
    non-negative integer falls back to the default, as DRF does."""

    max_limit = MAX_PAGE_SIZE
