"""Which services write each kind of content record, named once for every face that writes
(the REST viewsets and the admin): `create(**fields)`, `update(<record>=instance, **fields)`
and `delete(<record>=instance)`."""

from collections.abc import Callable
from dataclasses import dataclass

from . import content, schedules


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


SCHEDULE_WRITES = Writes("schedule", schedules.schedule_create, schedules.schedule_update, schedules.schedule_delete)
MESSAGESET_WRITES = Writes(
    "messageset", content.messageset_create, content.messageset_update, content.messageset_delete
)
MESSAGE_WRITES = Writes("message", content.message_create, content.message_update, content.message_delete)
BINARY_CONTENT_WRITES = Writes(
    "binary_content", content.binary_content_create, content.binary_content_update, content.binary_content_delete
)
