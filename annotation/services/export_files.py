"""An export written to files with its dataset card: what a background job (and export_dataset -o)
leaves for download.

Layout, by the job's stem `export-<id>-<format>` in EXPORT_DIR/project-<id>/:
- one data file (jsonl, jsonl.gz, parquet): `<stem>.<ext>`, the download, with the card beside it as
  `<stem>.README.md` (served at /api/exports/<id>/card);
- split files (`split_output=files`): `<stem>.zip` holding train.<ext>, test.<ext> and README.md;
- `file_format=hf_dataset`: `<stem>.hf_dataset.tar` holding the folder `<stem>/` that `datasets`'
  save_to_disk wrote (a DatasetDict: train, and test with a test_fraction) with README.md in it.
Everything is written under a `.part` name (or a work folder) and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from django.utils import timezone

from annotation.exports.card import ExportTally, dataset_card
from annotation.exports.outputs import (
    SPLITS,
    card_path_for,
    save_to_disk,
    tar_folder,
    write_split_files,
    zip_folder,
)
from annotation.exports.pipeline import ExportRequest, ProgressCallback, export_records, export_stream
from annotation.exports.writers import FILE_FORMATS
from annotation.models import Prompt
from annotation.selectors.agreement import agreement_scan


def export_download_path(*, request: ExportRequest, stem: Path) -> Path:
    """The file a download serves for an export written at `stem` (a path without extension)."""
    if request.file_format == "hf_dataset":
        return stem.with_name(stem.name + ".hf_dataset.tar")
    if request.filters.split_output == "files":
        return stem.with_name(stem.name + ".zip")
    return stem.with_name(f"{stem.name}.{FILE_FORMATS[request.file_format][1]}")


def _card(*, request: ExportRequest, tally: ExportTally, data_files: dict[str, str], file_format: str) -> str:
    project = request.project
    if tally.latest is None and request.export_format.kind == "prompts" and tally.rows:
        latest = Prompt.objects.filter(pk__in=set().union(*tally.prompts.values())).latest("created_at")
        tally.latest = latest.created_at.isoformat()
    return dataset_card(
        project_name=project.name,
        license_id=project.dataset_license,
        source=project.dataset_source,
        format_name=request.export_format.name,
        format_description=request.export_format.description,
        format_details=request.export_format.details,
        kind=request.export_format.kind,
        file_format=file_format,
        data_files=data_files,
        tally=tally,
        filters=request.filters.as_json(),
        agreement=agreement_scan(project_id=project.pk).project.as_dict(),
        exported_at=timezone.now().isoformat(),
    )


def export_files_write(
    *, request: ExportRequest, stem: Path, on_progress: ProgressCallback | None = None
) -> Path:
    """Write the export at `stem` (see the module's layout) with its card; return the download."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    download = export_download_path(request=request, stem=stem)
    card = card_path_for(download)
    tally = ExportTally()
    extension = FILE_FORMATS[request.file_format][1]
    if request.file_format != "hf_dataset" and request.filters.split_output != "files":
        partial = download.with_name(download.name + ".part")
        try:
            with open(partial, "wb") as handle:
                for chunk in export_stream(request=request, on_progress=on_progress, tally=tally):
                    handle.write(chunk)
            card.write_text(
                _card(
                    request=request, tally=tally, data_files={"train": download.name}, file_format=extension
                ),
                encoding="utf-8",
            )
            os.replace(partial, download)
        finally:
            partial.unlink(missing_ok=True)
        return download
    work = stem.with_name(stem.name + ".work")
    shutil.rmtree(work, ignore_errors=True)
    try:
        splits = SPLITS if request.filters.test_fraction else SPLITS[:1]
        file_format = "parquet" if request.file_format == "hf_dataset" else request.file_format
        ext = FILE_FORMATS[file_format][1]
        files_dir = work / "files"
        files_dir.mkdir(parents=True)
        paths = {split: files_dir / f"{split}.{ext}" for split in splits}
        write_split_files(
            export_records(request=request, on_progress=on_progress, tally=tally),
            paths=paths,
            file_format=file_format,
            schema_factory=lambda: request.export_format.schema_with(filters=request.filters.without_split()),
        )
        if request.file_format == "hf_dataset":
            folder = work / stem.name
            save_to_disk(parquet_files=paths, folder=folder, work=work)
            text = _card(
                request=request,
                tally=tally,
                data_files={split: f"{split}/data-*.arrow" for split in splits},
                file_format="hf_dataset (datasets.load_from_disk)",
            )
            (folder / "README.md").write_text(text, encoding="utf-8")
            partial = download.with_name(download.name + ".part")
            tar_folder(folder, partial)
        else:
            text = _card(
                request=request,
                tally=tally,
                data_files={s: p.name for s, p in paths.items()},
                file_format=ext,
            )
            (files_dir / "README.md").write_text(text, encoding="utf-8")
            partial = download.with_name(download.name + ".part")
            zip_folder(files_dir, partial)
        card.write_text(text, encoding="utf-8")
        os.replace(partial, download)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        download.with_name(download.name + ".part").unlink(missing_ok=True)
    return download
