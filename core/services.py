"""What every app's services do before they save a record: set its fields and validate it.

One helper, so each write refuses the same things the same way: a name that is not a
field the caller may set is a programming error (TypeError), and a value the model
refuses is a Django ValidationError by field (the API's exception handler answers it
as a 400 with `non_field_errors` for what belongs to no field).
"""

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.db import models

ModelT = TypeVar("ModelT", bound=models.Model)


def model_settable_fields(model: type[models.Model], *, fixed: Iterable[str] = ()) -> set[str]:
    """The fields a service may set from its arguments: the editable ones, without the
    primary key and without `fixed` (those the service itself sets, like `created_by`)."""
    return {
        field.name
        for field in model._meta.concrete_fields
        if field.editable and not field.primary_key and field.name not in fixed
    }


def model_set_and_validate(
    instance: ModelT,
    fields: Mapping[str, Any] | None = None,
    *,
    fixed: Iterable[str] = (),
    exclude: Iterable[str] | None = None,
    unique: bool = True,
) -> ModelT:
    """Set `fields` on `instance` and run the model's validation (`full_clean`); nothing is saved.

    `exclude`: fields left out of the validation. `unique=False` leaves uniqueness and
    the constraints to the caller (who checks them in its own way or lets the database).
    """
    fields = fields or {}
    unknown = set(fields) - model_settable_fields(type(instance), fixed=fixed)
    if unknown:
        raise TypeError(f"Not field(s) a service sets on {type(instance).__name__}: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(instance, name, value)
    instance.full_clean(exclude=list(exclude or ()), validate_unique=unique, validate_constraints=unique)
    return instance
