"""Token authentication for scripts: DRF's class, with its lookup read through annotation.sql.

Behaviour is DRF's: an unknown key or an inactive user is a 401 with the same messages.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from annotation.sql.requests import token_user


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's class, in one cheap query."""

    def authenticate_credentials(self, key: str):
        found = token_user(key=key)
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token, user = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, token
