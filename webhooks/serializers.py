from django.conf import settings
from rest_framework import serializers

from jobs.models import Attempt
from jobs.serializers import UriField
from jobs.services import destination_refusal
from jobs.values import without_userinfo
from topics.asgi import TOPIC_NAME, TOPIC_RULE

from .models import TopicWebhook, WebhookDelivery


class WebhookInputSerializer(serializers.Serializer):
    topic = serializers.CharField(help_text=TOPIC_RULE)
    destination = UriField(help_text="The http or https URL each message is POSTed to, without credentials.")

    def validate_topic(self, value: str) -> str:
        if not TOPIC_NAME.fullmatch(value):
            raise serializers.ValidationError(TOPIC_RULE)
        return value

    def validate_destination(self, value: str) -> str:
        reason = destination_refusal(value)
        if reason:
            raise serializers.ValidationError(reason)
        return value


class WebhookSerializer(serializers.ModelSerializer):
    class Meta:
        model = TopicWebhook
        fields = ["name", "topic", "destination", "last_seq", "discontinuities", "skipped", "created_at", "updated_at"]
        read_only_fields = fields


class CreatedWebhookSerializer(WebhookSerializer):
    """A new webhook with its secret, shown this once."""

    secret = serializers.SerializerMethodField(help_text="whsec_<base64>: keep it; it is not shown again.")

    class Meta(WebhookSerializer.Meta):
        fields = ["name", "topic", "destination", "secret"]
        read_only_fields = fields

    def get_secret(self, webhook: TopicWebhook) -> str:
        return self.context["secret"]


class WebhookRotationSerializer(serializers.Serializer):
    overlap = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="Seconds the previous secret still signs beside the new one (0: it stops now); at most, "
        "and by default, JOBS_SIGNING_SECRET_OVERLAP.",
    )

    def validate_overlap(self, value: int) -> int:
        if value > settings.JOBS_SIGNING_SECRET_OVERLAP:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {settings.JOBS_SIGNING_SECRET_OVERLAP}."
            )
        return value


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["number", "outcome", "started_at", "duration_ms", "status_code", "error"]


class DeliverySerializer(serializers.ModelSerializer):
    """A message handed to the jobs engine, and every attempt to send it."""

    topic_sequence_number = serializers.IntegerField(source="seq")
    sequence_page = serializers.IntegerField(source="page")
    job_id = serializers.UUIDField(source="job.id")
    state = serializers.CharField(source="job.state", help_text="The delivery job's state: failed is dead-lettered.")
    next_attempt_at = serializers.DateTimeField(source="job.next_attempt_at", allow_null=True)
    destination = serializers.SerializerMethodField()
    attempts = DeliveryAttemptSerializer(source="job.attempts", many=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "topic_sequence_number",
            "sequence_page",
            "job_id",
            "state",
            "next_attempt_at",
            "destination",
            "created_at",
            "attempts",
        ]

    def get_destination(self, delivery: WebhookDelivery) -> str:
        return without_userinfo(delivery.job.uri)
