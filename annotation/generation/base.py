"""What every generation backend promises: n completions of one conversation, each with provenance.

A backend is a small object with a `name`, a `model_name` and `generate()`. The services pick one
per project (see `annotation.services.generation`), handing it its settings, and store what it
returns; nothing in this package touches the database or reads Django settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from config.errors import DomainError


class GenerationFailed(DomainError):
    """A backend cannot produce completions and trying again will not help (bad settings, 4xx)."""

    status_code = 502
    code = "generation_failed"


class GenerationUnavailable(GenerationFailed):
    """A passing failure (timeout, 429, 5xx, connection refused): the task retries with backoff."""

    status_code = 503
    code = "generation_unavailable"


@dataclass(frozen=True)
class SamplingParams:
    """The project's sampling settings; the seed is chosen per completion."""

    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data


@dataclass(frozen=True)
class Completion:
    """One sampled answer and what it cost. Token counts are None when a server does not say."""

    text: str
    seed: int
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float
    finish_reason: str = ""


class GenerationBackend(Protocol):
    name: str
    model_name: str

    def generate(
        self, *, turns: list[dict[str, str]], sampling: SamplingParams, seeds: Sequence[int]
    ) -> list[Completion]:
        """One completion per seed, in seed order. Raises GenerationFailed or GenerationUnavailable."""
        ...

    def sampling_record(self, *, sampling: SamplingParams) -> dict[str, Any]:
        """The parameters to store with each candidate: enough to reproduce it with its seed."""
        ...
