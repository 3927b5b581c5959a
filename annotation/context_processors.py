"""Template context for the top bar."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from annotation.models import Membership
from annotation.models.projects import Role


def navigation(request: HttpRequest) -> dict[str, object]:
    """`can_see_dashboards`: staff, or a reviewer or admin of some project (queried only if a page asks)."""

    def can_see() -> bool:
        user = request.user
        if not user.is_authenticated:
            return False
        if user.is_staff:
            return True
        return Membership.objects.filter(user=user, role__in=[Role.REVIEWER, Role.ADMIN]).exists()

    return {"can_see_dashboards": SimpleLazyObject(can_see)}
