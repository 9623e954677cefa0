"""Writing many rows at once."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connections, models, router


def insert_all(model: type[models.Model], objects: Iterable[models.Model]) -> None:
    """Insert `objects` (new rows of `model`) in one go, their primary keys left to the database.

    On PostgreSQL they are streamed with COPY: each value prepared for the database as a save
    would prepare it, none of the per-row SQL that `bulk_create` builds (for a batch of hundreds
    of rows, most of its cost). Elsewhere `bulk_create`. The primary keys are not read back.
    """
    objects = list(objects)
    if not objects:
        return
    alias = router.db_for_write(model)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        model.objects.using(alias).bulk_create(objects)
        return
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for obj in objects:
            copy.write_row([field.get_db_prep_save(field.pre_save(obj, add=True), connection) for field in fields])
