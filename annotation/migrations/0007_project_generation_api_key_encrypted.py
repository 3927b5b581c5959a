"""Encrypt projects' API keys at rest: the column becomes text (a Fernet token is longer than the key),
then every stored key is encrypted in place. Reversible: going back decrypts them."""

from cryptography.fernet import InvalidToken
from django.db import migrations

import annotation.models.fields
from annotation.models.fields import text_decrypt, text_encrypt


def _rewrite(apps, schema_editor, convert):
    table = apps.get_model("annotation", "Project")._meta.db_table
    connection = schema_editor.connection
    name = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, generation_api_key FROM {name(table)} WHERE generation_api_key <> ''")
        for pk, value in cursor.fetchall():
            new = convert(value)
            if new is not None:
                cursor.execute(
                    f"UPDATE {name(table)} SET generation_api_key = %s WHERE id = %s", [new, pk]
                )


def _encrypt(value):
    try:
        text_decrypt(value)
        return None  # already a token (the migration ran before on this row)
    except InvalidToken:
        return text_encrypt(value)


def _decrypt(value):
    try:
        return text_decrypt(value)
    except InvalidToken:
        return None


def encrypt_keys(apps, schema_editor):
    _rewrite(apps, schema_editor, _encrypt)


def decrypt_keys(apps, schema_editor):
    _rewrite(apps, schema_editor, _decrypt)


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0005_candidate_finish_reason"),
    ]

    operations = [
        migrations.AlterField(
            model_name="project",
            name="generation_api_key",
            field=annotation.models.fields.EncryptedTextField(blank=True),
        ),
        migrations.RunPython(encrypt_keys, decrypt_keys),
    ]
