"""The API's one JSON error shape for what never reaches DRF's exception handler, and a 503 for a
database or broker that cannot be reached.

Django answers some errors before or around a view: an unmatched URL (404), a body over
DATA_UPLOAD_MAX_MEMORY_SIZE read by a middleware (400, an empty HTML page), an uncaught exception
(500). Under /api/ these become `{"error": {"code", "message", "details"}}` through the handlers that
config.urls registers; other pages keep Django's. A lost database connection or an unreachable
broker is an outage, not a bug: it answers 503 with `Retry-After` (JSON under /api/, a short plain
page elsewhere) instead of a 500, so clients and load balancers retry.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from kombu.exceptions import OperationalError as BrokerOperationalError

from config.api import body_too_large_error, error_body

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
# Seconds a client should wait before trying again: a database restart or failover, or a broker
# coming back, takes seconds; asking sooner only adds load to a server that is recovering.
RETRY_AFTER_SECONDS = 5
OUTAGES: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, BrokerOperationalError)


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def outage_response(request: HttpRequest, error: BaseException) -> HttpResponse:
    """503 with Retry-After, naming which service is down but never the exception's text (it can
    hold host names and credentials)."""
    service = "broker" if isinstance(error, BrokerOperationalError) else "database"
    message = f"The {service} cannot be reached; try again shortly."
    response: HttpResponse
    if is_api(request):
        response = JsonResponse(error_body("unavailable", message, {"service": service}), status=503)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class OutageMiddleware:
    """Turns a database or broker outage raised by a view into a 503 (see outage_response)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OUTAGES):
            return None
        logger.error("%s %s: %s is unreachable", request.method, request.path, type(exception).__name__)
        return outage_response(request, exception)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A malformed request Django refused before a view: a body over the upload limit is 413."""
    if isinstance(exception, RequestDataTooBig):
        if is_api(request):
            return JsonResponse(body_too_large_error(), status=413)
        return HttpResponse("The request body is too large.", status=413, content_type="text/plain")
    if is_api(request):
        return JsonResponse(error_body("bad_request", "The request is not valid."), status=400)
    return defaults.bad_request(request, exception)  # type: ignore[arg-type]


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]


def handler500(request: HttpRequest) -> HttpResponse:
    """An uncaught exception. Django calls this inside its `except` block, so the exception is still
    sys.exc_info()'s: an outage raised outside a view (a middleware's query) is a 503 here too."""
    error = sys.exc_info()[1]
    if isinstance(error, OUTAGES):
        return outage_response(request, error)
    if is_api(request):
        return JsonResponse(error_body("server_error", "Internal error."), status=500)
    return defaults.server_error(request)
