"""What the content store's services share: validating a record, and refusing a delete while others use it."""

from collections.abc import Iterable

from django.db import models, transaction
from django.db.models import ProtectedError, RestrictedError

from ..errors import ContentInUse

# How many of the records that use a record a refused delete names, per kind.
NAMED_USERS = 10
BLOCKING = (models.PROTECT, models.RESTRICT)


def _describe(model: type[models.Model], count: int, named: Iterable[models.Model]) -> str:
    noun = model._meta.verbose_name if count == 1 else model._meta.verbose_name_plural
    names = ", ".join(str(record) for record in named)
    more = f" and {count - NAMED_USERS} more" if count > NAMED_USERS else ""
    return f"{count} {noun} ({names}{more})"


def _users(instance: models.Model) -> list[str]:
    """What keeps `instance` from being deleted: a description per kind of record that uses it."""
    found = []
    for relation in instance._meta.related_objects:
        if relation.on_delete not in BLOCKING or relation.many_to_many:
            continue
        users = relation.related_model._base_manager.filter(**{relation.field.name: instance}).order_by("pk")
        count = users.count()
        if count:
            found.append(_describe(relation.related_model, count, users[:NAMED_USERS]))
    return found


def _refusal(instance: models.Model, users: list[str]) -> ContentInUse:
    return ContentInUse(
        f"Cannot delete {instance._meta.verbose_name} {instance.pk}: it is used by {'; '.join(users)}. "
        "Change or delete those first.",
        code="in_use",
    )


def delete_unless_in_use(instance: models.Model) -> None:
    """Delete `instance`, or raise ContentInUse naming what still uses it."""
    users = _users(instance)
    if users:
        raise _refusal(instance, users)
    try:
        with transaction.atomic():
            instance.delete()
    except (ProtectedError, RestrictedError) as error:  # used by what it would have deleted, or a late newcomer
        blocked = error.protected_objects if isinstance(error, ProtectedError) else error.restricted_objects
        by_model: dict[type, list] = {}
        for record in sorted(blocked, key=lambda record: record.pk):
            by_model.setdefault(type(record), []).append(record)
        described = [_describe(model, len(records), records[:NAMED_USERS]) for model, records in by_model.items()]
        raise _refusal(instance, described) from None
