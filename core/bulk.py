"""Writing many rows at once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import connections, models, router
from django.utils import timezone

# Fields whose Python values psycopg writes as they are: no preparation by Django needed.
_AS_THEY_ARE = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.FloatField,
    models.BooleanField,
    models.UUIDField,
    models.DateTimeField,
    models.ForeignKey,
)


def _converter(field: models.Field, connection) -> Callable[[Any], Any]:
    if isinstance(field, models.JSONField):
        return lambda value: None if value is None else json.dumps(value, cls=field.encoder)
    if isinstance(field, _AS_THEY_ARE):
        return lambda value: value
    return lambda value: field.get_db_prep_save(value, connection)


def _default(field: models.Field) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return timezone.now()
    return field.get_default()


def insert_rows(model: type[models.Model], rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert new rows of `model`, each given as {field attname: value} (a field left out takes its
    default), their primary keys left to the database.

    On PostgreSQL they are streamed with COPY, without making a model instance or Django's SQL for
    each (for hundreds of rows, most of `bulk_create`'s cost). Elsewhere `bulk_create`.
    """
    rows = list(rows)
    if not rows:
        return
    alias = router.db_for_write(model)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        model.objects.using(alias).bulk_create(model(**row) for row in rows)
        return
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    convert = [(field.attname, _converter(field, connection), field) for field in fields]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [to_db(row[name]) if name in row else to_db(_default(field)) for name, to_db, field in convert]
            )
