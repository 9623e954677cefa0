from django.core.management.base import CommandError

from contentstore.models import MessageSet


def find_messageset(reference: str) -> MessageSet:
    """The message set with this short name, or else this id."""
    messageset = MessageSet.objects.filter(short_name=reference).first()
    if messageset is None and reference.isdigit():
        messageset = MessageSet.objects.filter(pk=int(reference)).first()
    if messageset is None:
        raise CommandError(f"No message set with short name or id {reference!r}.")
    return messageset
