"""What every generation backend promises: n completions of one conversation, each with provenance.

A backend is a small object with a `name`, a `model_name`, `generate()` and `stream()` (the same
completions, handed out piece by piece as they are sampled, for the live converse task). The services pick one
per project (see `annotation.services.generation`), handing it its settings, and store what it
returns; nothing in this package touches the database or reads Django settings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


@dataclass(frozen=True)
class StreamEvent:
    """One piece of a streamed answer: `text` to append to slot `slot`'s preview (may be "").

    `slot` indexes the seeds handed to `stream()`. The slot's last event has `done` True and carries
    its `completion`; every other event has `done` False and `completion` None.
    """

    slot: int
    text: str
    done: bool = False
    completion: Completion | None = None


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

    def stream(
        self, *, turns: list[dict[str, str]], sampling: SamplingParams, seeds: Sequence[int]
    ) -> Iterator[StreamEvent]:
        """The answers for all seeds at once, as they are sampled: one slot per seed, in seed order.

        Events of different slots interleave. A slot's `text` pieces, joined, are a preview that
        only ever grows (never text it will take back, so no stop sequence and no half of a
        character); its final event's `completion.text` is the answer to store: the preview as
        `completion_clean` leaves it. Every slot ends with exactly one `done` event.

        Raises GenerationFailed or GenerationUnavailable from the iteration, possibly after some
        events. Closing the iterator early (`close()`) stops the generation promptly and releases
        what it holds (a model's lock, connections); a consumer that stops reading must close it.
        """
        ...
