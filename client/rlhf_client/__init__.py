"""Typed Python client for the RLHF data platform's REST API: `Client(base_url, token=...)`, its
exceptions (ApiError for the API's error shape, JobFailed, WaitTimeout), the answers' types, and
`verify_signature` for a webhook receiver."""

from rlhf_client.client import Client
from rlhf_client.errors import ApiError, ClientError, JobFailed, WaitTimeout
from rlhf_client.types import ExportCount, ExportJob, ImportJob, QualitySummary, RewardModel
from rlhf_client.webhooks import verify_signature

__all__ = [
    "ApiError",
    "Client",
    "ClientError",
    "ExportCount",
    "ExportJob",
    "ImportJob",
    "JobFailed",
    "QualitySummary",
    "RewardModel",
    "WaitTimeout",
    "verify_signature",
]
