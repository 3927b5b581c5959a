"""The login lockout's authentication backend: django-axes' check, for every login that has a client."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LoginLockoutBackend(AxesStandaloneBackend):
    """Refuses a locked-out username and address before any password is checked.

    Every login a client can reach (/accounts/login/, /admin/login/) passes its request. A call
    without one comes from code that holds the password itself (Django's test client, a shell),
    where there is no address to lock out: it is left to the next backend instead of failing.
    """

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
