"""The API's answers as typed dictionaries: the JSON as the server sends it, keys as in /api/schema/."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

ImportStatus = Literal["queued", "checking", "importing", "succeeded", "failed"]
ExportStatus = Literal["queued", "running", "succeeded", "failed"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# hf_dataset (datasets' save_to_disk folder as a tar) is written by background jobs only, not streamed.
FileFormat = Literal["jsonl", "jsonl.gz", "parquet", "hf_dataset"]


class ImportLineError(TypedDict):
    line: int | None
    reason: str


class ImportJob(TypedDict):
    """A background prompt import (/api/imports/<id>/)."""

    id: int
    project: int
    filename: str
    source: str
    status: ImportStatus
    size_bytes: int
    rows_read: int
    imported: int
    duplicates: int
    error_count: int
    errors: list[ImportLineError]
    error: str
    progress: float
    requested_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class ExportJob(TypedDict):
    """A background export (/api/exports/<id>/); download_url is set once it succeeded."""

    id: int
    project: int
    export_format: str
    file_format: FileFormat
    filters: dict[str, Any]
    status: ExportStatus
    rows_written: int
    rows_total: int | None
    progress: float
    error: str
    requested_by: str | None
    created_at: str
    finished_at: str | None
    download_url: str | None


class ExportCount(TypedDict):
    export_format: str
    rows: int
    row_kind: str
    filters: dict[str, Any]


class QualitySummary(TypedDict):
    """A project's agreement (pairwise, Kendall's tau, with gold) and counts."""

    project_id: int
    prompts: int
    rankings: int
    gold_rankings: int
    demonstrations: int
    gold_agreement: float | None
    agreement: float | None
    kendall_tau: float | None
    pairs_agreed: int
    pairs_compared: int
    ranking_pairs: int


class RewardModel(TypedDict):
    """A training run; `version` is set once it succeeded."""

    id: int
    project: int
    version: int | None
    status: RunStatus
    trigger: str
    is_active: bool
    progress: float
    progress_message: str
    validation_accuracy: float | None
    comparisons_seen: int
    data_cutoff: str | None
    error: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None
