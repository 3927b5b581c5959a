"""Output serializers shared by every request, instead of one built per response.

Instantiating a DRF serializer deep-copies and re-binds every declared field, nested ones
included; `.to_representation` then only reads those bound fields. For the labeler's task (nested
project, prompt, candidates and flags) that costs several times the CPU of the representation
itself, on every response of the queue (bench/queue_load.py measures it as server CPU per
request). Only for serializers that read no `context` (no request-dependent fields): the shared
instance has none.
"""

from __future__ import annotations

from typing import Any

from rest_framework.serializers import BaseSerializer

_BOUND: dict[type[BaseSerializer], BaseSerializer] = {}


def _bound(serializer_class: type[BaseSerializer]) -> BaseSerializer:
    serializer = _BOUND.get(serializer_class)
    if serializer is None:
        serializer = serializer_class()
        serializer.fields  # noqa: B018 - bind every field once, before the instance is shared
        _BOUND[serializer_class] = serializer
    return serializer


def output_data(serializer_class: type[BaseSerializer], instance: Any) -> Any:
    """What `serializer_class(instance).data` returns, from the process's one bound instance."""
    return _bound(serializer_class).to_representation(instance)
