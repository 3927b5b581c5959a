from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from annotation.selectors.health import broker_reachable, database_reachable


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer; 503 naming whichever is down, and nothing more."""
    down = [
        name
        for name, reachable in (("broker", broker_reachable()), ("database", database_reachable()))
        if not reachable
    ]
    if down:
        return JsonResponse({"status": "down", "down": down}, status=503)
    return JsonResponse({"status": "ok"})
