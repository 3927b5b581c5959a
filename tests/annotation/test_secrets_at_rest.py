"""A project's API key is encrypted in the database, read back in clear only by the app, rotated by
FIELD_ENCRYPTION_KEY, and encrypted in place by migration 0007 (and decrypted when going back)."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from annotation.models import Project
from annotation.tasks import candidates_generate

KEY = "sk-at-rest-31337"


def _raw_key(project_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT generation_api_key FROM annotation_project WHERE id = %s", [project_id])
        return cursor.fetchone()[0]


def test_the_key_is_stored_encrypted_and_sent_in_clear(http_project, make_prompts, scripted_server):
    http_project.generation_api_key = KEY
    http_project.save()
    raw = _raw_key(http_project.pk)
    assert raw and KEY not in raw and raw.startswith("gAAAA")  # a Fernet token
    assert Project.objects.get(pk=http_project.pk).generation_api_key == KEY
    [prompt] = make_prompts(http_project, 1)
    candidates_generate.apply(args=[prompt.pk]).get()
    assert scripted_server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_keys_rotate_and_an_unreadable_key_reads_as_empty(project, settings, caplog):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = [old]
    project.generation_api_key = KEY
    project.save()
    settings.FIELD_ENCRYPTION_KEY = [new, old]  # rotated: new writes, old still reads
    assert Project.objects.get(pk=project.pk).generation_api_key == KEY
    settings.FIELD_ENCRYPTION_KEY = [new]  # the old key dropped: the secret is lost, the page opens
    with caplog.at_level(logging.WARNING):
        assert Project.objects.get(pk=project.pk).generation_api_key == ""
    assert "no configured key decrypts" in caplog.text and KEY not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_migration_encrypts_existing_keys_and_reverses():
    executor = MigrationExecutor(connection)
    before = [("annotation", "0005_candidate_finish_reason")]
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO annotation_project (name, description, guidelines, is_active, k, rankings_per_prompt,"
                " demonstrations_per_prompt, min_demonstration_chars, ratings_required, lease_seconds,"
                " generation_backend, generation_model, generation_base_url, generation_api_key, temperature,"
                " top_p, max_tokens, stop_sequences, demonstrations_as_candidates, low_water_mark,"
                " retrain_enabled, retrain_min_new_comparisons, reward_model_config, created_at)"
                " VALUES ('Old', '', '', %s, 4, 2, 1, 20, %s, 1800, 'openai', 'm', 'http://x/v1', %s, 0.9,"
                " 0.95, 160, '[]', %s, 0, %s, 500, '{}', CURRENT_TIMESTAMP)",
                [True, False, KEY, False, True],
            )
            cursor.execute("SELECT id FROM annotation_project WHERE name = 'Old'")
            project_id = cursor.fetchone()[0]
        executor = MigrationExecutor(connection)
        executor.migrate([("annotation", "0007_project_generation_api_key_encrypted")])
        raw = _raw_key(project_id)
        assert (
            KEY not in raw
            and Project.objects.only("generation_api_key").get(pk=project_id).generation_api_key == KEY
        )
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        assert _raw_key(project_id) == KEY
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
        Project.objects.filter(name="Old").delete()


@pytest.mark.django_db(transaction=True)
def test_migration_drops_stored_export_seeds(project, labeler):
    from annotation.models import ExportJob

    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([("annotation", "0008_prompt_import_job")])
        old = (
            MigrationExecutor(connection).loader.project_state(("annotation", "0008_prompt_import_job")).apps
        )
        OldJob = old.get_model("annotation", "ExportJob")
        seeded = OldJob.objects.create(
            project_id=project.pk,
            export_format="pairs",
            filters={"anonymise_seed": "s3cret", "min_agreement": 0.5},
        )
        plain = OldJob.objects.create(
            project_id=project.pk, export_format="pairs", filters={"anonymise_seed": ""}
        )
        MigrationExecutor(connection).migrate([("annotation", "0009_exportjob_filters_without_seed")])
        assert ExportJob.objects.get(pk=seeded.pk).filters == {"anonymise": True, "min_agreement": 0.5}
        assert ExportJob.objects.get(pk=plain.pk).filters == {}
    finally:
        MigrationExecutor(connection).migrate(latest)
