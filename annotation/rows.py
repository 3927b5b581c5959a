"""Model instances from hand-written SQL, converted exactly as the ORM converts its own rows.

A few reads run on every labeler request (the token check, the assignment a submission locks).
On the 2-core reference machine compiling them with the ORM cost more CPU than running them,
so they are written as SQL (see annotation/services/leases.py for the lease's own queries).
`row_reader` turns their rows into ordinary model instances: the same columns, and the same
database converters (JSON decoding, datetimes on SQLite), so no caller can tell them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar, cast

from django.db import connection
from django.db.models import Field, Model

ModelType = TypeVar("ModelType", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class RowReader(Generic[ModelType]):
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
def _reader(model: type[Model], alias: str, vendor: str) -> RowReader:
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    converters = []
    for position, field in enumerate(fields):
        expression = field.get_col(alias)
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        if found:
            converters.append((position, tuple(found), expression))
    return RowReader(
        model=model,
        columns=", ".join(f"{alias}.{quote(str(field.column))}" for field in fields),
        names=tuple(field.attname for field in fields),
        converters=tuple(converters),
    )


def row_reader(model: type[ModelType], *, alias: str) -> RowReader[ModelType]:
    """The SELECT list for `model` under table alias `alias`, and how to read it back."""
    return _reader(model, alias, connection.vendor)


def rows_insert(model: type[Model], *, fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert `rows` (values in `fields` order) into `model`'s table in one statement.

    For the child rows a submission writes by the handful (ranking items, comparisons), where
    `bulk_create` spent more CPU preparing instances than the database spent inserting them.
    Values go through each field's own `get_db_prep_save`, as the ORM's would; no ids come back.
    """
    if not rows:
        return
    model_fields = [model._meta.get_field(name) for name in fields]
    if not all(isinstance(field, Field) for field in model_fields):
        raise ValueError(f"rows_insert takes concrete fields of {model.__name__}, got {list(fields)}")
    concrete = cast(list[Field], model_fields)
    quote = connection.ops.quote_name
    placeholders = "(" + ", ".join(["%s"] * len(concrete)) + ")"
    params = [
        field.get_db_prep_save(value, connection)
        for row in rows
        for field, value in zip(concrete, row, strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(str(f.column)) for f in concrete)})"
            f" VALUES {', '.join([placeholders] * len(rows))}",
            params,
        )


def row_exists(sql: str, params: Sequence[Any]) -> bool:
    """Whether the query (a `SELECT 1 ... LIMIT 1`) finds a row; for checks every submission runs."""
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchone() is not None


def row_update(instance: Model, *, fields: Sequence[str]) -> None:
    """Write `fields` of a stored instance, as `save(update_fields=...)` does, in one plain UPDATE.

    For the one row every submission marks; the fields' own `get_db_prep_save` prepares the values.
    """
    model = type(instance)
    concrete = [model._meta.get_field(name) for name in fields]
    if not all(isinstance(field, Field) for field in concrete):
        raise ValueError(f"row_update takes concrete fields of {model.__name__}, got {list(fields)}")
    quote = connection.ops.quote_name
    columns, params = [], []
    for field in cast(list[Field], concrete):
        columns.append(f"{quote(str(field.column))} = %s")
        params.append(field.get_db_prep_save(getattr(instance, field.attname), connection))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} SET {', '.join(columns)}"
            f" WHERE {quote(str(model._meta.pk.column))} = %s",
            [*params, instance.pk],
        )
