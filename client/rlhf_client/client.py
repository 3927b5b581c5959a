"""The client: one method per thing a script does with the platform, over its REST API.

Every method is keyword-only and named `<entity>_<action>` as the server's services are. Background jobs
(imports, exports, training runs) are started by one method and waited on by another, or by `wait=True`;
a wait polls the job, draws a progress bar when asked, and raises JobFailed or WaitTimeout.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import requests

from rlhf_client.errors import JobFailed, WaitTimeout
from rlhf_client.progress import ProgressBar
from rlhf_client.transport import DEFAULT_MAX_RETRIES, DEFAULT_MAX_RETRY_WAIT, DEFAULT_TIMEOUT, Transport
from rlhf_client.types import (
    ExportCount,
    ExportJob,
    FileFormat,
    ImportJob,
    QualitySummary,
    RewardModel,
)

if TYPE_CHECKING:
    from datasets import Dataset

JobT = TypeVar("JobT", bound=Mapping[str, Any])

# The API serves at most 500 rows a page; asking for that many keeps a listing to few requests.
PAGE_SIZE = 500
# Polls start fast (a small job is done in a second) and slow down to this, so a long training run
# costs a request every few seconds, well inside the API's per-user throttle.
MAX_POLL_INTERVAL = 5.0
CHUNK_BYTES = 64 * 1024


def _query_filters(filters: Mapping[str, Any] | None) -> dict[str, str]:
    """Export filters as the stream's query parameters: lists comma-separated, booleans as true/false."""
    query: dict[str, str] = {}
    for key, value in (filters or {}).items():
        if isinstance(value, bool):
            query[key] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            query[key] = ",".join(str(item) for item in value)
        else:
            query[key] = str(value)
    return query


class Client:
    """A session with one platform server, authenticated by an API token (`Authorization: Token ...`).

    `timeout` is (connect, read) seconds for every request; 429 and 503 answers are retried after
    their Retry-After, `max_retries` times and only when it is at most `max_retry_wait` seconds.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        poll_interval: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        self.transport = Transport(
            base_url=base_url,
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            session=session,
        )
        self.poll_interval = poll_interval

    # Prompt imports

    def prompts_import(
        self,
        *,
        project_id: int,
        path: str | os.PathLike[str],
        source: str = "",
        wait: bool = True,
        timeout: float = 3600.0,
        progress: bool = False,
    ) -> ImportJob:
        """Upload a JSONL or CSV file of prompts (each line a `prompt` text or a `messages` list) and,
        with `wait`, return once the import job ended; JobFailed (with the bad lines in
        `job["errors"]`) if it failed, in which case nothing was imported."""
        file_path = Path(path)
        with file_path.open("rb") as handle:
            job: ImportJob = self.transport.request(
                "POST",
                f"/api/projects/{project_id}/imports/start",
                data={"source": source},
                files={"file": (file_path.name, handle)},
            ).json()
        if not wait:
            return job
        return self.import_wait(import_id=job["id"], timeout=timeout, progress=progress)

    def import_get(self, *, import_id: int) -> ImportJob:
        result: ImportJob = self.transport.get_json(f"/api/imports/{import_id}/")
        return result

    def import_wait(self, *, import_id: int, timeout: float = 3600.0, progress: bool = False) -> ImportJob:
        return self._wait(
            kind="prompt import",
            fetch=lambda: self.import_get(import_id=import_id),
            failed={"failed"},
            timeout=timeout,
            progress=progress,
        )

    # Project statistics (the quality API)

    def quality_summary(self, *, project_id: int) -> QualitySummary:
        """Agreement (pairwise, Kendall's tau, with gold) and counts of prompts, rankings, demonstrations."""
        result: QualitySummary = self.transport.get_json(f"/api/projects/{project_id}/quality/summary")
        return result

    def labeler_stats(self, *, project_id: int) -> list[dict[str, Any]]:
        """Per-labeler tasks, time, skips, agreement and flags, every page."""
        return self._all_pages(f"/api/projects/{project_id}/quality/labelers/")

    def queue_depth(self, *, project_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.transport.get_json(f"/api/projects/{project_id}/quality/queue-depth")
        return result

    def throughput(self, *, project_id: int, days: int = 30) -> dict[str, Any]:
        result: dict[str, Any] = self.transport.get_json(
            f"/api/projects/{project_id}/quality/throughput", params={"days": days}
        )
        return result

    # Exports

    def export_count(
        self, *, project_id: int, export_format: str, filters: Mapping[str, Any] | None = None
    ) -> ExportCount:
        """How many rows the export would hold, counted by the server without writing them."""
        result: ExportCount = self.transport.get_json(
            f"/api/projects/{project_id}/exports/count",
            params={"export_format": export_format, **_query_filters(filters)},
        )
        return result

    def export_rows(
        self,
        *,
        project_id: int,
        export_format: str,
        filters: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """The export's rows, streamed (JSON Lines) and parsed one at a time: constant memory.

        `filters` are the API's filters and format options, as the export start takes them (date_from,
        date_to, labelers, min_agreement, consensus_only, exclude_flagged, anonymise, test_fraction,
        ...; see /api/schema/). With `progress`, one more request counts the rows for the bar.
        """
        total = (
            self.export_count(project_id=project_id, export_format=export_format, filters=filters)["rows"]
            if progress
            else None
        )
        params = {"export_format": export_format, "file_format": "jsonl", **_query_filters(filters)}
        with (
            self.transport.request(
                "GET", f"/api/projects/{project_id}/exports/stream", params=params, stream=True
            ) as response,
            ProgressBar(enabled=progress, total=total, unit="rows", description=export_format) as bar,
        ):
            for line in response.iter_lines(chunk_size=CHUNK_BYTES):
                if line:
                    yield json.loads(line)
                    bar.advance(1)

    def export_dataset(
        self,
        *,
        project_id: int,
        export_format: str,
        filters: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> Dataset:
        """The export as a `datasets.Dataset` (needs the `datasets` extra): the rows of export_rows,
        in order, with columns as they come."""
        try:
            from datasets import Dataset
        except ImportError as error:
            raise ImportError("export_dataset needs datasets: pip install 'rlhf-client[datasets]'") from error
        rows = list(
            self.export_rows(
                project_id=project_id, export_format=export_format, filters=filters, progress=progress
            )
        )
        return Dataset.from_list(rows)

    def export_file(
        self,
        *,
        project_id: int,
        export_format: str,
        path: str | os.PathLike[str],
        file_format: FileFormat = "jsonl",
        filters: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> Path:
        """Stream the export straight into `path` (jsonl, jsonl.gz or parquet), with a bar in bytes.

        Written beside `path` and renamed at the end, so a broken download never leaves a partial file
        under the name asked for.
        """
        params = {"export_format": export_format, "file_format": file_format, **_query_filters(filters)}
        response = self.transport.request(
            "GET", f"/api/projects/{project_id}/exports/stream", params=params, stream=True
        )
        return self._save(response, path=Path(path), progress=progress, description=export_format)

    def export_start(
        self,
        *,
        project_id: int,
        export_format: str,
        file_format: FileFormat = "jsonl",
        filters: Mapping[str, Any] | None = None,
        wait: bool = False,
        timeout: float = 3600.0,
        progress: bool = False,
    ) -> ExportJob:
        """Queue a background export (throttled per hour by the server); with `wait`, return it finished."""
        body: dict[str, Any] = {"export_format": export_format, "file_format": file_format}
        if filters:
            body["filters"] = dict(filters)
        job: ExportJob = self.transport.post_json(f"/api/projects/{project_id}/exports/start", json=body)
        if not wait:
            return job
        return self.export_wait(job_id=job["id"], timeout=timeout, progress=progress)

    def export_get(self, *, job_id: int) -> ExportJob:
        result: ExportJob = self.transport.get_json(f"/api/exports/{job_id}/")
        return result

    def export_wait(self, *, job_id: int, timeout: float = 3600.0, progress: bool = False) -> ExportJob:
        return self._wait(
            kind="export",
            fetch=lambda: self.export_get(job_id=job_id),
            failed={"failed"},
            timeout=timeout,
            progress=progress,
        )

    def export_download(self, *, job_id: int, path: str | os.PathLike[str], progress: bool = False) -> Path:
        """A finished export job's file, saved to `path` (as export_file saves)."""
        response = self.transport.request("GET", f"/api/exports/{job_id}/download", stream=True)
        return self._save(response, path=Path(path), progress=progress, description=f"export {job_id}")

    # Reward models

    def reward_models_list(self, *, project_id: int, versions_only: bool = False) -> list[RewardModel]:
        """The project's training runs, newest first; with `versions_only`, those that made a version."""
        runs = cast(list[RewardModel], self._all_pages(f"/api/projects/{project_id}/reward-models/"))
        return [run for run in runs if run["version"] is not None] if versions_only else runs

    def reward_model_get(self, *, project_id: int, reward_model_id: int) -> RewardModel:
        """One run, with its config, data summary and metrics (loss curve) besides the listed fields."""
        result: RewardModel = self.transport.get_json(
            f"/api/projects/{project_id}/reward-models/{reward_model_id}/"
        )
        return result

    def reward_model_retrain(
        self, *, project_id: int, wait: bool = False, timeout: float = 6 * 3600.0, progress: bool = False
    ) -> RewardModel:
        """Queue a training run now (ApiError `run_in_progress`, 409, while one is queued or running);
        with `wait`, return it once it succeeded."""
        run: RewardModel = self.transport.post_json(f"/api/projects/{project_id}/reward-models/retrain")
        if not wait:
            return run
        return self.reward_model_wait(
            project_id=project_id, reward_model_id=run["id"], timeout=timeout, progress=progress
        )

    def reward_model_wait(
        self, *, project_id: int, reward_model_id: int, timeout: float = 6 * 3600.0, progress: bool = False
    ) -> RewardModel:
        """Poll a run until it succeeded; JobFailed if it failed or was cancelled."""
        return self._wait(
            kind="reward-model run",
            fetch=lambda: self.reward_model_get(project_id=project_id, reward_model_id=reward_model_id),
            failed={"failed", "cancelled"},
            timeout=timeout,
            progress=progress,
        )

    def reward_model_activate(self, *, project_id: int, reward_model_id: int) -> RewardModel:
        """Make a succeeded version the project's active one (its candidates get rescored)."""
        result: RewardModel = self.transport.post_json(
            f"/api/projects/{project_id}/reward-models/{reward_model_id}/activate"
        )
        return result

    def reward_model_cancel(self, *, project_id: int, reward_model_id: int) -> RewardModel:
        """Cancel a queued or running run; a running one stops at its next training step."""
        result: RewardModel = self.transport.post_json(
            f"/api/projects/{project_id}/reward-models/{reward_model_id}/cancel"
        )
        return result

    # Shared machinery

    def _all_pages(self, path: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = self.transport.get_json(path, params={"limit": PAGE_SIZE, "offset": len(rows)})
            rows.extend(page["results"])
            if not page["results"] or len(rows) >= page["count"]:
                return rows

    def _wait(
        self,
        *,
        kind: str,
        fetch: Callable[[], JobT],
        failed: set[str],
        timeout: float,
        progress: bool,
    ) -> JobT:
        """Poll `fetch` until the job's status is succeeded (returned) or in `failed` (JobFailed).

        The bar shows the job's own `progress` (0-1) as a percentage, with its progress message.
        """
        deadline = time.monotonic() + timeout
        interval = self.poll_interval
        with ProgressBar(enabled=progress, total=100, unit="%", description=kind) as bar:
            while True:
                job = fetch()
                bar.set_to(
                    round(100 * float(job.get("progress") or 0.0), 1),
                    message=str(job.get("progress_message") or job["status"]),
                )
                if job["status"] == "succeeded":
                    return job
                if job["status"] in failed:
                    raise JobFailed(kind=kind, job=job)
                if time.monotonic() + interval > deadline:
                    raise WaitTimeout(kind=kind, job=job, seconds=timeout)
                time.sleep(interval)
                interval = min(MAX_POLL_INTERVAL, interval * 1.5)

    @staticmethod
    def _save(response: requests.Response, *, path: Path, progress: bool, description: str) -> Path:
        length = response.headers.get("Content-Length")
        partial = path.with_name(f".{path.name}.part")
        try:
            with (
                response,
                partial.open("wb") as out,
                ProgressBar(
                    enabled=progress,
                    total=int(length) if length and length.isdigit() else None,
                    unit="B",
                    description=description,
                ) as bar,
            ):
                for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                    out.write(chunk)
                    bar.advance(len(chunk))
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return path
