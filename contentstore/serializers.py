"""The content store's REST bodies: what each record answers with, and the checks a body needs."""

from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.utils import html

from .models import BinaryContent, Message, MessageSet, Schedule
from .validators import CRON_FIELDS, message_text_errors

# The fields each kind of record answers with; the timestamps always come last.
MESSAGESET_FIELDS = ["id", "short_name", "label", "content_type", "notes", "channel", "next_set", "default_schedule"]
MESSAGE_FIELDS = ["id", "messageset", "sequence_number", "lang", "text_content", "binary_content"]
TIMESTAMPS = ["created_at", "updated_at"]


class CronField(serializers.CharField):
    """A cron field. In a form, DRF takes an empty optional field as left out, which here
    would mean the default `*`: a blank minute would fire every minute. It is an error."""

    def get_value(self, dictionary):
        value = super().get_value(dictionary)
        if value is empty and html.is_html_input(dictionary) and dictionary.get(self.field_name) == "":
            return ""
        return value


class ScheduleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Schedule
        fields = ["id", "minute", "hour", "day_of_week", "day_of_month", "month_of_year"]

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        return (CronField if field_name in CRON_FIELDS else field_class), kwargs


class MessageSetSerializer(serializers.ModelSerializer):
    class Meta:
        model = MessageSet
        fields = [*MESSAGESET_FIELDS, *TIMESTAMPS]


class BinaryContentSerializer(serializers.ModelSerializer):
    class Meta:
        model = BinaryContent
        fields = ["id", "content"]
        extra_kwargs = {
            "content": {
                "help_text": "The file (multipart field `content`), answered as its absolute URL. "
                "Limits: BINARY_CONTENT_MAX_BYTES and BINARY_CONTENT_TYPES."
            }
        }


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [*MESSAGE_FIELDS, "metadata", *TIMESTAMPS]

    def validate(self, attrs: dict) -> dict:
        """The text rules that depend on the set's channel and on the file, reported on `text_content`."""

        def current(name):
            return attrs[name] if name in attrs else getattr(self.instance, name, None)

        messageset = current("messageset")
        if "binary_content" in attrs:
            has_file = attrs["binary_content"] is not None
        else:
            has_file = getattr(self.instance, "binary_content_id", None) is not None
        errors = message_text_errors(
            channel=messageset.channel if messageset else None,
            text_content=current("text_content"),
            has_file=has_file,
        )
        if errors:
            raise serializers.ValidationError({"text_content": errors})
        return attrs


class MessageContentSerializer(serializers.ModelSerializer):
    """A message as sent: without metadata, its file nested."""

    binary_content = BinaryContentSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Message
        fields = [*MESSAGE_FIELDS, *TIMESTAMPS]
        read_only_fields = fields


class MessageSetMessagesSerializer(serializers.ModelSerializer):
    messages = MessageContentSerializer(many=True, read_only=True, help_text="By sequence number, then language.")

    class Meta:
        model = MessageSet
        fields = [*MESSAGESET_FIELDS, "messages", *TIMESTAMPS]
        read_only_fields = fields
