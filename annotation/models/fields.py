"""A text field stored encrypted: secrets such as a project's API key are never in the database in clear.

Fernet (AES-128-CBC with an HMAC-SHA256, from `cryptography`) under FIELD_ENCRYPTION_KEY: one or
more Fernet keys, the first encrypting and all decrypting, so keys can be rotated. Without it, the
key is derived from SECRET_KEY (HKDF), and SECRET_KEY_FALLBACKS still decrypt after SECRET_KEY is
rotated. A value that no key decrypts reads as empty, with a warning: the secret is lost and must be
entered again, but the page that shows the project still opens.
"""

from __future__ import annotations

import base64
import functools
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

logger = logging.getLogger(__name__)

_HKDF_INFO = b"rlhf-platform field encryption"


def _derived_key(secret: str) -> bytes:
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret.encode())
    return base64.urlsafe_b64encode(material)


@functools.cache
def _fernet(configured: tuple[str, ...], secret_key: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for key in configured:
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64-encoded bytes, e.g. from "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from None
    fernets += [Fernet(_derived_key(secret)) for secret in (secret_key, *fallbacks)]
    return MultiFernet(fernets)


def field_fernet() -> MultiFernet:
    """The keys in force now (settings read at each call, so a test or a rotation sees its own)."""
    return _fernet(
        tuple(key for key in settings.FIELD_ENCRYPTION_KEY if key),
        settings.SECRET_KEY,
        tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ())),
    )


def text_encrypt(value: str) -> str:
    return field_fernet().encrypt(value.encode()).decode()


def text_decrypt(token: str) -> str:
    """Raises InvalidToken when no key in force decrypts the token."""
    return field_fernet().decrypt(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """Plain text in Python, a Fernet token in the database; the empty string stays empty."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return text_encrypt(value)

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return text_decrypt(value)
        except InvalidToken:
            logger.warning(
                "%s.%s holds a value no configured key decrypts (FIELD_ENCRYPTION_KEY or SECRET_KEY "
                "changed?); it reads as empty",
                self.model.__name__,
                self.name,
            )
            return ""
