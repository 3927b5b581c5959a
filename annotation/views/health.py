from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from annotation.selectors.health import broker_check, database_check


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer; 503 naming whichever is down."""
    problems = {
        name: reason
        for name, reason in (("database", database_check()), ("broker", broker_check()))
        if reason
    }
    if problems:
        return JsonResponse({"status": "down", "down": sorted(problems), "reasons": problems}, status=503)
    return JsonResponse({"status": "ok"})
