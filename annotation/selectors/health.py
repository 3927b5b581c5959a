"""Reachability of the database and the broker, for /healthz."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import connection


def database_check() -> str | None:
    """None when a query round-trips, else the reason."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any driver error means "down" to a health probe
        return f"{type(error).__name__}: {error}"
    return None


def broker_check(*, timeout_seconds: float = 2.0) -> str | None:
    """None when the Celery broker named in the settings accepts a connection, else the reason.

    A fresh connection each time: a pooled one could still look alive after the broker stopped.
    """
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    if url.startswith("filesystem://"):
        folder = Path(options.get("data_folder_in", ""))
        if not folder.is_dir():
            return f"broker folder {folder} does not exist"
        return None
    try:
        with Connection(url, connect_timeout=timeout_seconds, transport_options=options) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_seconds)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None
