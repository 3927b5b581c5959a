"""Batched sampling on the embedded model: K answers to one prompt at once, streamed token by token.

One llama.cpp context holds K sequences. The prompt is evaluated once, on sequence 0, and its KV
cache is handed to the others (llama_memory_seq_cp; in a unified cache the cells are shared, not
copied). Each step then makes one llama_decode call holding the newest token of every live
sequence, so one pass over the weights serves K answers: on a CPU a small batch costs little more
than one token, because reading the weights dominates.

This context is not the one `Llama` keeps for generate(): Llama() takes no n_seq_max and builds its
context for a single sequence, and llama_decode refuses any other sequence id there. The streaming
context shares the loaded weights (no second load) and adds its own KV cache, about 160 MB for the
packaged model at 8192 tokens; the caller keeps it beside the model (embedded.LoadedModel).

The `llama` handed in is a llama_cpp.Llama, typed loosely so that importing this module does not
load llama.cpp. Nothing here is thread-safe: the caller holds the model's lock for a whole stream.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterator, Sequence
from typing import Any

from annotation.generation.base import (
    Completion,
    GenerationFailed,
    SamplingParams,
    StreamEvent,
)
from annotation.generation.formatting import completion_clean
from annotation.generation.streaming import StreamText

# K is at most 9 in a project; the sequence count costs nothing until sequences hold tokens.
STREAM_SLOTS_MAX = 16
# The same room as the generate() context; the prompt is stored once and each answer beside it.
STREAM_CONTEXT_TOKENS = 8192
# llama-cpp-python's create_completion defaults, which generate() samples with: the same sampling
# chain makes a streamed answer a draw from the same distribution as a generated one.
TOP_K = 40
MIN_P = 0.05
TYPICAL_P = 1.0
PENALTY_LAST_N = 64  # Llama's last_n_tokens_size
# A token's text is rarely over 32 bytes; a longer one is asked for again at its size.
PIECE_BUFFER_BYTES = 64


def stream_context_create(*, llama: Any, threads: int) -> Any:
    """A context on `llama`'s weights for STREAM_SLOTS_MAX sequences in one unified KV cache.

    Both thread counts are `threads`: every step after the prompt is a batch of K tokens, for which
    llama.cpp uses the batch thread count, and Llama's default for that is every CPU, whose spare
    threads spin when cores are busy (see embedded.MAX_THREADS).
    """
    import llama_cpp
    from llama_cpp import _internals

    params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
    params.n_ctx = STREAM_CONTEXT_TOKENS
    params.n_seq_max = STREAM_SLOTS_MAX
    params.kv_unified = True  # one pool of cells, so the prompt's cells serve every sequence
    params.n_threads = params.n_threads_batch = threads
    try:
        return _internals.LlamaContext(model=llama._model, params=params, verbose=False)
    except (ValueError, RuntimeError) as error:
        raise GenerationFailed(f"llama.cpp could not make a streaming context: {error}") from None


def samples_stream(
    *,
    llama: Any,
    context: Any,
    prompt: str,
    stop: Sequence[str],
    sampling: SamplingParams,
    seeds: Sequence[int],
    repeat_penalty: float,
) -> Iterator[StreamEvent]:
    """One answer per seed to `prompt`, sampled together on `context`, as StreamEvents.

    `context` comes from stream_context_create on the same `llama`. Each answer ends at an
    end-of-generation token, at the first of `stop` (cut there, as create_completion cuts) or after
    `sampling.max_tokens` tokens. Raises GenerationFailed when the prompt and K answers cannot fit.
    Closing the iterator between events frees the batch and samplers at once.
    """
    import llama_cpp

    slots = len(seeds)
    if slots == 0:
        return
    if slots > STREAM_SLOTS_MAX:
        raise GenerationFailed(f"at most {STREAM_SLOTS_MAX} answers can be streamed at once, not {slots}")
    started = time.perf_counter()
    vocab = llama._model.vocab
    prompt_tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    room = llama_cpp.llama_n_ctx(context.ctx)
    if len(prompt_tokens) + slots * sampling.max_tokens > room:
        raise GenerationFailed(
            f"the prompt is {len(prompt_tokens)} tokens; with {slots} answers of up to "
            f"{sampling.max_tokens} tokens it does not fit the streaming context of {room} tokens"
        )
    memory = llama_cpp.llama_get_memory(context.ctx)
    llama_cpp.llama_memory_clear(memory, True)  # whatever an earlier, perhaps abandoned, stream left
    batch_size = llama_cpp.llama_n_batch(context.ctx)
    batch = llama_cpp.llama_batch_init(max(batch_size, slots), 0, 1)
    samplers: list[Any] = []
    try:
        for seed in seeds:
            samplers.append(
                _sampler_chain(vocab=vocab, sampling=sampling, seed=seed, repeat_penalty=repeat_penalty)
            )
        # The prompt, in chunks the context accepts, on sequence 0; logits for its last token only.
        for begin in range(0, len(prompt_tokens), batch_size):
            chunk = prompt_tokens[begin : begin + batch_size]
            _batch_fill(batch, [(token, begin + i, 0) for i, token in enumerate(chunk)])
            batch.logits[len(chunk) - 1] = True
            _decode(llama_cpp, context, batch)
        for slot in range(1, slots):
            llama_cpp.llama_memory_seq_cp(memory, 0, slot, -1, -1)

        texts = [StreamText(stop=stop) for _ in seeds]
        counts = [0] * slots
        logits_row = [(len(prompt_tokens) - 1) % batch_size] * slots  # the prompt's last row
        position = len(prompt_tokens)
        live = list(range(slots))
        while live:
            step: list[tuple[int, int, int]] = []  # (token, position, slot) for the next decode
            for slot in live:
                # Samples from this slot's row of the last decode and feeds the token to its
                # penalties, as create_completion's sampler does.
                token = llama_cpp.llama_sampler_sample(samplers[slot], context.ctx, logits_row[slot])
                finish_reason = ""
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish_reason = "stop"
                else:
                    counts[slot] += 1
                    piece = texts[slot].feed(_token_piece(llama_cpp, vocab, token))
                    if piece:
                        yield StreamEvent(slot=slot, text=piece)
                    if texts[slot].stopped:
                        finish_reason = "stop"
                    elif counts[slot] >= sampling.max_tokens:
                        finish_reason = "length"
                if not finish_reason:
                    step.append((token, position, slot))
                    continue
                completion = Completion(
                    text=completion_clean(text=texts[slot].text),
                    seed=seeds[slot],
                    prompt_tokens=len(prompt_tokens),
                    completion_tokens=counts[slot],
                    seconds=time.perf_counter() - started,
                    finish_reason=finish_reason,
                )
                # Its cells are free for the others; the sequence is never decoded again.
                llama_cpp.llama_memory_seq_rm(memory, slot, -1, -1)
                yield StreamEvent(slot=slot, text=texts[slot].finish(), done=True, completion=completion)
            live = [slot for _token, _position, slot in step]
            if not live:
                break
            _batch_fill(batch, step)
            for row, (_token, _position, slot) in enumerate(step):
                batch.logits[row] = True
                logits_row[slot] = row
            position += 1
            _decode(llama_cpp, context, batch)
    finally:
        for sampler in samplers:
            llama_cpp.llama_sampler_free(sampler)
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_clear(memory, True)


def _sampler_chain(*, vocab: Any, sampling: SamplingParams, seed: int, repeat_penalty: float) -> Any:
    """The chain Llama._init_sampler builds for create_completion, seeded with `seed`."""
    import llama_cpp

    parts = [
        llama_cpp.llama_sampler_init_penalties(
            llama_cpp.llama_vocab_n_tokens(vocab), PENALTY_LAST_N, repeat_penalty, 0.0, 0.0
        )
    ]
    if sampling.temperature == 0:
        parts.append(llama_cpp.llama_sampler_init_greedy())
    else:
        parts += [
            llama_cpp.llama_sampler_init_top_k(TOP_K),
            llama_cpp.llama_sampler_init_typical(TYPICAL_P, 1),
            llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1),
            llama_cpp.llama_sampler_init_min_p(MIN_P, 1),
            llama_cpp.llama_sampler_init_temp(sampling.temperature),
            llama_cpp.llama_sampler_init_dist(seed),
        ]
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    for part in parts:
        llama_cpp.llama_sampler_chain_add(chain, part)  # the chain owns and frees its parts
    return chain


def _batch_fill(batch: Any, tokens: Sequence[tuple[int, int, int]]) -> None:
    """Put (token, position, sequence) rows in `batch`, none of them asking for logits yet."""
    batch.n_tokens = len(tokens)
    for row, (token, position, sequence) in enumerate(tokens):
        batch.token[row] = token
        batch.pos[row] = position
        batch.n_seq_id[row] = 1
        batch.seq_id[row][0] = sequence
        batch.logits[row] = False


def _decode(llama_cpp: Any, context: Any, batch: Any) -> None:
    code = llama_cpp.llama_decode(context.ctx, batch)
    if code != 0:
        raise GenerationFailed(f"llama.cpp failed to decode a batch (llama_decode returned {code})")


def _token_piece(llama_cpp: Any, vocab: Any, token: int) -> bytes:
    """The bytes a token stands for (possibly part of a character); special tokens give none."""
    buffer = ctypes.create_string_buffer(PIECE_BUFFER_BYTES)
    size = llama_cpp.llama_token_to_piece(vocab, token, buffer, PIECE_BUFFER_BYTES, 0, False)
    if size < 0:  # too long for the buffer: -size is the length it needs
        buffer = ctypes.create_string_buffer(-size)
        size = llama_cpp.llama_token_to_piece(vocab, token, buffer, -size, 0, False)
    return buffer.raw[: max(size, 0)]
