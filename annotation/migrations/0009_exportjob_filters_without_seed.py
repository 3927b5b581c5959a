"""Export jobs no longer keep an anonymisation seed: pseudonyms are keyed by a server secret and the
project. A stored seed becomes `anonymise: true` (so the job's filters still parse) and is dropped."""

from django.db import migrations


def seeds_drop(apps, schema_editor):
    ExportJob = apps.get_model("annotation", "ExportJob")
    for job in ExportJob.objects.filter(filters__has_key="anonymise_seed").only("pk", "filters"):
        filters = dict(job.filters)
        if filters.pop("anonymise_seed", None) not in (None, ""):
            filters["anonymise"] = True
        job.filters = filters
        job.save(update_fields=["filters"])


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0008_prompt_import_job"),
    ]

    operations = [
        migrations.RunPython(seeds_drop, migrations.RunPython.noop),
    ]
