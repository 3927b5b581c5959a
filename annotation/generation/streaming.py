"""What the backends' `stream()` share: a slot's text as it grows, and several threads merged into one
iterator.

`StreamText` turns a slot's raw output (bytes from a tokenizer, or text from a server) into the
pieces a labeler may be shown: never half of a UTF-8 character, never the start of a stop sequence
until the next pieces show it is not one, never leading whitespace. `threads_merge` runs one
producer per slot in its own thread and hands their events out in arrival order; closing the
iterator tells the producers to stop.

Pure: reads no settings, touches no database.
"""

from __future__ import annotations

import codecs
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from annotation.generation.base import StreamEvent

# How long closing waits for producer threads to notice; they are daemons, so one stuck in a
# system call past this holds nothing but its thread.
THREAD_JOIN_SECONDS = 5.0


class StreamText:
    """One slot's answer so far; `feed` returns what may be shown of it now.

    The pieces returned by `feed` and `finish`, joined, equal `text` without its leading
    whitespace once `finish` has run. `text` is everything before the first stop sequence (the
    earliest one, whichever it is); after a stop, `stopped` is True and further input is ignored.
    """

    def __init__(self, *, stop: Sequence[str] = ()) -> None:
        self._stop = tuple(sequence for sequence in stop if sequence)
        # "ignore" as llama-cpp-python's create_completion decodes, so a stream and generate() drop
        # the same invalid bytes; an incomplete character is held until its last byte arrives.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self._longest_stop = max((len(sequence) for sequence in self._stop), default=0)
        self._shown = 0  # how much of `text` the pieces handed out cover
        self._started = False  # whether a non-whitespace character has been handed out
        self.text = ""
        self.stopped = False

    def feed(self, data: bytes | str) -> str:
        """Add raw output; return the new piece that is safe to show ("" when nothing is yet)."""
        if self.stopped:
            return ""
        before = len(self.text)
        self.text += self._decoder.decode(data) if isinstance(data, bytes) else data
        # A stop sequence that ends in the new text started at most (longest stop - 1) before it.
        scan_from = max(0, before - self._longest_stop + 1)
        found = [index for stop in self._stop if (index := self.text.find(stop, scan_from)) >= 0]
        if found:
            self.text = self.text[: min(found)]
            self.stopped = True
            return self._release(len(self.text))
        return self._release(len(self.text) - self._partial_stop_length())

    def finish(self) -> str:
        """The output has ended: return what was held back (an unfinished character is dropped)."""
        if not self.stopped:
            self.text += self._decoder.decode(b"", final=True)
        return self._release(len(self.text))

    def _partial_stop_length(self) -> int:
        """Length of the longest end of `text` that a stop sequence begins with."""
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def _release(self, end: int) -> str:
        # Whatever was held back is never part of a stop sequence found later: a stop starting
        # before `end` would have made a longer partial match than the one held (see feed).
        if not self._started:
            leading = len(self.text) - len(self.text.lstrip())
            if leading >= end:
                return ""
            self._shown, self._started = leading, True
        if end <= self._shown:
            return ""
        piece = self.text[self._shown : end]
        self._shown = end
        return piece


Emit = Callable[[StreamEvent], None]
Producer = Callable[[Emit, threading.Event], None]


class _ProducerEnded:
    """Queued by a producer thread when it returns; `error` is what it raised, if anything."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def threads_merge(
    *, producers: Sequence[Producer], on_close: Callable[[], None] | None = None
) -> Iterator[StreamEvent]:
    """Run each producer in its own thread and yield the events they emit, as they arrive.

    A producer is called as `producer(emit, cancelled)`: it calls `emit` for each event and
    should return soon after `cancelled` is set. The first exception a producer raises is raised
    from this iterator, after the others are cancelled. Closing the iterator (or an exception)
    sets `cancelled`, calls `on_close` (to interrupt producers blocked in a read), and waits a
    little for the threads.
    """
    events: queue.SimpleQueue[StreamEvent | _ProducerEnded] = queue.SimpleQueue()
    cancelled = threading.Event()

    def run(producer: Producer) -> None:
        try:
            producer(events.put, cancelled)
        except BaseException as error:  # handed to the consumer, which raises it
            events.put(_ProducerEnded(error))
        else:
            events.put(_ProducerEnded(None))

    threads = [threading.Thread(target=run, args=(producer,), daemon=True) for producer in producers]
    try:
        for thread in threads:
            thread.start()
        running = len(threads)
        while running:
            item = events.get()
            if isinstance(item, _ProducerEnded):
                running -= 1
                if item.error is not None:
                    raise item.error
                continue
            yield item
    finally:
        cancelled.set()
        if on_close is not None:
            on_close()
        deadline = time.monotonic() + THREAD_JOIN_SECONDS
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
