import django_filters

from .models import Message, MessageSet


class MessageSetFilter(django_filters.FilterSet):
    class Meta:
        model = MessageSet
        fields = ["short_name", "content_type"]


class MessageFilter(django_filters.FilterSet):
    messageset = django_filters.NumberFilter(field_name="messageset_id", help_text="The message set's id.")

    class Meta:
        model = Message
        fields = ["messageset", "sequence_number", "lang"]
