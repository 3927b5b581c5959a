"""Files a background export (or export_dataset -o) writes besides one stream: the train and test
files of `split_output=files`, and `datasets`' save_to_disk folder (`file_format=hf_dataset`).

Writers here are pushed batches of records (the stream writers in writers.py are pulled), so one pass
over the source fills both split files with one batch in memory at a time.
"""

from __future__ import annotations

import gzip
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from annotation.exports.text import json_encode
from annotation.exports.writers import FILE_FORMATS

SPLITS = ("train", "test")


def card_path_for(download: Path) -> Path:
    """Where the dataset card of the export whose download is `download` lies: beside it, named
    after the export with `.README.md` for its extension."""
    name = download.name
    for suffix in (".hf_dataset.tar", ".zip", *(f".{ext}" for _type, ext in FILE_FORMATS.values())):
        if name.endswith(suffix):
            return download.with_name(name[: -len(suffix)] + ".README.md")
    return download.with_name(name + ".README.md")


class RecordFile:
    """One data file written batch by batch: JSONL, gzipped JSONL or Parquet."""

    def __init__(self, path: Path, *, file_format: str, schema_factory) -> None:
        self.file_format = file_format
        self.parquet = None
        if file_format == "parquet":
            import pyarrow.parquet as pq

            self.schema = schema_factory()
            self.parquet = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        else:
            opener = gzip.open if file_format == "jsonl.gz" else open
            self.handle = opener(path, "wb")

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self.parquet is not None:
            import pyarrow as pa

            self.parquet.write_table(pa.Table.from_pylist(records, schema=self.schema))
        else:
            self.handle.write(("\n".join(map(json_encode, records)) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        else:
            self.handle.close()


def write_split_files(
    batches: Iterable[list[dict[str, Any]]], *, paths: dict[str, Path], file_format: str, schema_factory
) -> None:
    """Each record to the file of its `split` (the column itself left out)."""
    files = {
        split: RecordFile(path, file_format=file_format, schema_factory=schema_factory)
        for split, path in paths.items()
    }
    try:
        for records in batches:
            by_split: dict[str, list[dict[str, Any]]] = {split: [] for split in files}
            for record in records:
                by_split[record.pop("split", "train")].append(record)
            for split, part in by_split.items():
                files[split].write(part)
    finally:
        for handle in files.values():
            handle.close()


def save_to_disk(*, parquet_files: dict[str, Path], folder: Path, work: Path) -> None:
    """`datasets.DatasetDict` of the splits' Parquet files, saved with save_to_disk into `folder`.

    The arrow cache goes under `work` (deleted by the caller), not the user's Hugging Face cache.
    """
    import datasets  # imported here: heavy, and only this output needs it

    splits = {
        split: datasets.Dataset.from_parquet(str(path), cache_dir=str(work / "cache"), keep_in_memory=False)
        for split, path in parquet_files.items()
    }
    datasets.DatasetDict(splits).save_to_disk(str(folder))


def zip_folder(folder: Path, target: Path) -> None:
    """The folder's files at the top of a zip; text deflated, already-compressed data stored."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.iterdir()):
            packed = path.suffix in (".jsonl", ".md")
            archive.write(path, path.name, zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED)


def tar_folder(folder: Path, target: Path) -> None:
    """The folder as one uncompressed tar, under its own name (arrow files compress poorly)."""
    with tarfile.open(target, "w") as archive:
        archive.add(folder, arcname=folder.name)
