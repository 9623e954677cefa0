"""Which services write each kind of content record, named once for every face that writes
(the REST viewsets and the admin): `create(**fields)`, `update(<record>=instance, **fields)`
and `delete(<record>=instance)`."""

from collections.abc import Callable
from dataclasses import dataclass

from .content import (
    binary_content_create,
    binary_content_delete,
    binary_content_update,
    message_create,
    message_delete,
    message_update,
    messageset_create,
    messageset_delete,
    messageset_update,
)
from .schedules import schedule_create, schedule_delete, schedule_update


@dataclass(frozen=True)
class Writes:
    record: str  # the keyword that names the instance to `update` and `delete`
    create: Callable
    update: Callable
    delete: Callable

    def update_record(self, instance, fields: dict):
        return self.update(**{self.record: instance}, **fields)

    def delete_record(self, instance) -> None:
        self.delete(**{self.record: instance})


SCHEDULE_WRITES = Writes("schedule", schedule_create, schedule_update, schedule_delete)
MESSAGESET_WRITES = Writes("messageset", messageset_create, messageset_update, messageset_delete)
MESSAGE_WRITES = Writes("message", message_create, message_update, message_delete)
BINARY_CONTENT_WRITES = Writes("binary_content", binary_content_create, binary_content_update, binary_content_delete)
