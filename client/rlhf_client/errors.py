"""The client's exceptions: one for an error the API answered, one for a job that ended badly, one for
a wait that ran out of time. All share ClientError, so one `except` catches what the client raises
(network failures stay requests' own exceptions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ClientError(Exception):
    """Base of the client's own exceptions."""


class ApiError(ClientError):
    """The API answered with an error: its JSON error shape `{"error": {"code", "message", "details"}}`.

    `status` is the HTTP status; `details` is whatever the API put there (field errors for a 400, the
    run in progress for a 409, ...), or None. A body that is not the error shape (a proxy's page, say)
    gets the code `http_<status>` and its first 500 characters as the message.
    """

    def __init__(self, *, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @classmethod
    def from_response_body(cls, *, status: int, body: Any, text: str) -> ApiError:
        error = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(error, Mapping) and isinstance(error.get("code"), str):
            return cls(
                status=status,
                code=error["code"],
                message=str(error.get("message", "")),
                details=error.get("details"),
            )
        return cls(status=status, code=f"http_{status}", message=text[:500])


class JobFailed(ClientError):
    """A background job (prompt import, export, training run) ended failed or cancelled.

    `job` is the job as the API last returned it; `job["error"]` says why.
    """

    def __init__(self, *, kind: str, job: Mapping[str, Any]) -> None:
        super().__init__(
            f"{kind} {job.get('id')} {job.get('status')}: {job.get('error') or 'no reason given'}"
        )
        self.kind = kind
        self.job = job


class WaitTimeout(ClientError):
    """A wait on a background job passed its time limit; the job itself goes on."""

    def __init__(self, *, kind: str, job: Mapping[str, Any], seconds: float) -> None:
        super().__init__(f"{kind} {job.get('id')} still {job.get('status')} after {seconds:g} s")
        self.kind = kind
        self.job = job
        self.seconds = seconds
