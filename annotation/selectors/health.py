"""Reachability of the database and the broker, for /healthz.

Each answers only up or down. Why something is down goes to the log, never to the caller: the
exception text of a driver can name hosts, ports, users and file paths, and /healthz is public.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


def database_reachable() -> bool:
    """True when a query round-trips."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any driver error means "down" to a health probe
        logger.warning("health: the database is not reachable", exc_info=True)
        return False
    return True


def broker_reachable(*, timeout_seconds: float = 2.0) -> bool:
    """True when the Celery broker named in the settings accepts a connection.

    A fresh connection each time: a pooled one could still look alive after the broker stopped.
    """
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    if url.startswith("filesystem://"):
        folder = Path(options.get("data_folder_in", ""))
        if not folder.is_dir():
            logger.warning("health: the broker folder %s does not exist", folder)
            return False
        return True
    try:
        with Connection(url, connect_timeout=timeout_seconds, transport_options=options) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_seconds)
    except Exception:
        logger.warning("health: the broker is not reachable", exc_info=True)
        return False
    return True
