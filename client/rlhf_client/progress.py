"""Progress bars through tqdm (the `progress` extra), or none: the client never needs tqdm to work."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class ProgressBar:
    """A counter that draws itself with tqdm when enabled; does nothing otherwise."""

    def __init__(self, *, enabled: bool, total: float | None, unit: str, description: str) -> None:
        self._bar: Any = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError as error:
                raise ImportError("progress=True needs tqdm: pip install 'rlhf-client[progress]'") from error
            self._bar = tqdm(total=total, unit=unit, desc=description, unit_scale=unit == "B")

    def advance(self, amount: float) -> None:
        if self._bar is not None:
            self._bar.update(amount)

    def set_to(self, value: float, *, message: str = "") -> None:
        """Jump to `value` (a job's own count or percentage), with an optional status line."""
        if self._bar is not None:
            self._bar.n = value
            if message:
                self._bar.set_postfix_str(message, refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
