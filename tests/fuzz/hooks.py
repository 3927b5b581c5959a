"""Schemathesis hooks for the fuzz run, loaded by the schemathesis CLI (SCHEMATHESIS_HOOKS).

Random path ids almost never name a row (and Hypothesis favours 0), so on their own the fuzzer would
only ever meet 404s. Three of every four integer ids are swapped for ids of real rows (FUZZ_PATH_IDS,
a JSON object of parameter name to ids, set by tests/fuzz/test_api_fuzz.py); the fourth keeps its
generated value and probes the 404 path. The choice is a checksum of the case's id, query and body,
not a random draw, so a deterministic run stays repeatable.
"""

from __future__ import annotations

import json
import os
import zlib
from typing import Any

import schemathesis

PATH_IDS: dict[str, list[int]] = json.loads(os.environ.get("FUZZ_PATH_IDS", "{}"))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    # before_call runs in every phase (examples, coverage, fuzzing), unlike the generation hooks.
    parameters = case.path_parameters
    if not parameters:
        return
    for name, value in list(parameters.items()):
        ids = PATH_IDS.get(name)
        # Integers, and the strings of digits some phases send in their place.
        if not ids or isinstance(value, bool) or not isinstance(value, (int, str)):
            continue
        if isinstance(value, str) and not value.isascii() or not str(value).lstrip("-").isdigit():
            continue
        choice = zlib.crc32(f"{name}={value} {case.query!r} {case.body!r}".encode())
        if choice % 4:
            parameters[name] = ids[(choice // 4) % len(ids)]


if os.environ.get("FUZZ_LOG"):
    # One line per call, "METHOD path status": what the run reached, beyond schemathesis's summary.
    @schemathesis.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        with open(os.environ["FUZZ_LOG"], "a") as log:
            log.write(f"{case.method} {case.formatted_path} {response.status_code}\n")
