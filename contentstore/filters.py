from core.filters import FilterSet, IntegerFilter

from .models import Message, MessageSet


class MessageSetFilter(FilterSet):
    class Meta:
        model = MessageSet
        fields = ["short_name", "content_type"]


class MessageFilter(FilterSet):
    messageset = IntegerFilter(field_name="messageset_id", help_text="The message set's id.")

    class Meta:
        model = Message
        fields = ["messageset", "sequence_number", "lang"]
