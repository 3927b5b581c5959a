"""Byte streams for exports: JSONL, gzipped JSONL and Parquet, one chunk per batch of records.

Each writer consumes batches lazily and yields bytes as soon as a batch is encoded, so a download or a
file write holds one batch at a time. Parquet is written in row groups (one per batch) to a sink that
is drained after each group: Parquet only appends, so no seekable file is needed and it streams too.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from annotation.exports.text import json_encode

FILE_FORMATS = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "jsonl.gz": ("application/gzip", "jsonl.gz"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    # `datasets`' save_to_disk folder, as one tar: background jobs and export_dataset only.
    "hf_dataset": ("application/x-tar", "hf_dataset.tar"),
}
# File formats that are a folder of files, never one stream.
FOLDER_FORMATS = frozenset({"hf_dataset"})


def jsonl_chunks(batches: Iterable[list[dict[str, Any]]]) -> Iterator[bytes]:
    for records in batches:
        if records:
            yield ("\n".join(map(json_encode, records)) + "\n").encode("utf-8")


def gzip_chunks(chunks: Iterable[bytes], *, level: int = 6) -> Iterator[bytes]:
    """Gzip a byte stream incrementally (wbits=31 writes the gzip header and trailer)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


class _DrainSink(io.RawIOBase):
    """A write-only file whose contents are taken out after each row group."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def parquet_chunks(batches: Iterable[list[dict[str, Any]]], *, schema) -> Iterator[bytes]:
    # Imported here: pyarrow costs ~55 MB resident, which JSONL exports need not pay.
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = _DrainSink()
    # The footer keeps metadata of every row group; min/max statistics of long text columns would
    # make it grow with the export, so statistics are kept only for the small numeric columns.
    numeric = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    writer = pq.ParquetWriter(sink, schema, compression="zstd", write_statistics=numeric or False)
    try:
        for records in batches:
            if records:
                writer.write_table(pa.Table.from_pylist(records, schema=schema))
                data = sink.take()
                if data:
                    yield data
    finally:
        writer.close()
    yield sink.take()


def encode(
    batches: Iterable[list[dict[str, Any]]], *, file_format: str, schema_factory: Callable[[], Any]
) -> Iterator[bytes]:
    """Bytes of `batches` in `file_format`; `schema_factory` gives the Parquet schema when needed."""
    if file_format == "jsonl":
        return jsonl_chunks(batches)
    if file_format == "jsonl.gz":
        return gzip_chunks(jsonl_chunks(batches))
    if file_format == "parquet":
        return parquet_chunks(batches, schema=schema_factory())
    raise ValueError(f"unknown file format {file_format!r}")
