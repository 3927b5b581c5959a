"""Text the database cannot store: found before it reaches a query, so it is a 400 and not a 500.

PostgreSQL refuses a NUL character in `text` and in `jsonb` (psycopg raises before the query runs),
and no database can store a lone UTF-16 surrogate, which Python's JSON decoder accepts from a
`\\ud800` escape and which then fails to encode as UTF-8. Both are refused wherever text comes in:
the API's JSON parser (config.api) and the prompt import files (annotation.services.prompts).
Pure Python, no Django, so that services, parsers and commands can share it.
"""

from __future__ import annotations

import re
from typing import Any

# NUL, or any surrogate code point: a valid pair is already one character once decoded, so any
# surrogate left in a Python str is a lone one (or an undecodable byte kept by `surrogateescape`).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None if it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"a NUL character at position {found.start()}"
    return f"a lone surrogate or bytes that are not UTF-8 at position {found.start()}"


def value_text_problem(value: Any) -> tuple[str, str] | None:
    """The first string (object keys included) inside decoded JSON that cannot be stored.

    Returns (where, why): `where` is a JSONPath-like location ("$.draft.answer", "$.order[0]").
    Walks with an explicit stack, so a value as deep as the JSON decoder allowed cannot overflow it.
    """
    stack: list[tuple[str, Any]] = [("$", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return where, problem
        elif isinstance(item, dict):
            for key, child in item.items():
                key_problem = text_problem(key) if isinstance(key, str) else None
                if key_problem:
                    return f"{where} (a key)", key_problem
                stack.append((f"{where}.{key}", child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{index}]", child) for index, child in enumerate(item))
    return None
