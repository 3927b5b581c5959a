"""Webhooks without Django: the signature scheme (`signing`, which clients copy as is) and the one
HTTP request of a delivery (`sending`), handed its settings as arguments.

The models, the events and the Celery task that drive them live in annotation.models.webhooks,
annotation.services.webhooks and annotation.tasks.
"""
