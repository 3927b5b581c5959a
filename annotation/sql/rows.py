"""Model instances from hand-written SQL, converted exactly as the ORM converts its own rows, and
multi-row inserts whose values are prepared by the fields themselves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import Model

ModelType = TypeVar("ModelType", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class ModelReader(Generic[ModelType]):
    model: type[ModelType]
    columns: str  # the SELECT list, e.g. 'a."id", a."project_id", ...', in the model's field order
    names: tuple[str, ...]  # attribute names, same order
    converters: tuple[tuple[int, tuple[Converter, ...], Any], ...]  # (position, converters, expression)

    @property
    def width(self) -> int:
        return len(self.names)

    def read(self, row: Sequence[Any], start: int = 0) -> ModelType:
        """The instance held in `row[start:start + width]`."""
        values = list(row[start : start + self.width])
        for position, converters, expression in self.converters:
            for convert in converters:
                values[position] = convert(values[position], expression, connection)
        return self.model.from_db(connection.alias, list(self.names), values)


@cache
def _reader_for(model: type[Model], alias: str, vendor: str) -> ModelReader:
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    converters = []
    for position, field in enumerate(fields):
        expression = field.get_col(alias)
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        if found:
            converters.append((position, tuple(found), expression))
    return ModelReader(
        model=model,
        columns=", ".join(f"{alias}.{quote(str(field.column))}" for field in fields),
        names=tuple(field.attname for field in fields),
        converters=tuple(converters),
    )


def model_reader(model: type[ModelType], *, alias: str) -> ModelReader[ModelType]:
    """The SELECT list for `model` under table alias `alias`, and how to read it back."""
    return _reader_for(model, alias, connection.vendor)


def rows_insert(model: type[Model], *, fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """One multi-row INSERT; values go through each field's own `get_db_prep_save`, as the ORM's would."""
    if not rows:
        return
    concrete = [model._meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    placeholders = "(" + ", ".join(["%s"] * len(concrete)) + ")"
    params = [
        field.get_db_prep_save(value, connection)  # type: ignore[union-attr]
        for row in rows
        for field, value in zip(concrete, row, strict=True)
    ]
    columns = ", ".join(quote(str(field.column)) for field in concrete)  # type: ignore[union-attr]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES {', '.join([placeholders] * len(rows))}",
            params,
        )
