from rest_framework import serializers

from .models import BehindSubscription, Subscription, SubscriptionSendFailure


def _with_slash(url: str | None) -> str | None:
    """The routes answer with or without the trailing slash; links carry it, as the reference's did."""
    return url if not url or url.endswith("/") else f"{url}/"


class LinkField(serializers.HyperlinkedRelatedField):
    def get_url(self, obj, view_name, request, format):
        return _with_slash(super().get_url(obj, view_name, request, format))


class SelfLinkField(serializers.HyperlinkedIdentityField):
    def get_url(self, obj, view_name, request, format):
        return _with_slash(super().get_url(obj, view_name, request, format))


SUBSCRIPTION_FIELDS = [
    "url",
    "id",
    "version",
    "identity",
    "messageset",
    "next_sequence_number",
    "lang",
    "active",
    "completed",
    "schedule",
    "process_status",
    "metadata",
    "created_at",
    "updated_at",
    "initial_sequence_number",
    "messageset_label",
]


class SubscriptionSerializer(serializers.ModelSerializer):
    url = SelfLinkField(view_name="subscription-detail")
    messageset_label = serializers.CharField(source="messageset.label", read_only=True, help_text="The set's label.")

    class Meta:
        model = Subscription
        fields = SUBSCRIPTION_FIELDS
        read_only_fields = ["id", "created_at", "updated_at"]


class SubscriptionRequestSerializer(serializers.Serializer):
    """The Hub's webhook body; `data` is validated as a subscription by the view."""

    hook = serializers.JSONField(required=False, help_text="The Hub's description of the hook (not used).")
    data = serializers.JSONField(help_text="The subscription's fields, as for `POST subscriptions/`.")


class AcceptedSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()


class ScheduleSendAcceptedSerializer(serializers.Serializer):
    """The answer to `POST schedule/{id}/send/`."""

    accepted = serializers.BooleanField()


class SendRefusedSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()
    reason = serializers.CharField()


class AcceptedTaskSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()
    task_id = serializers.CharField()


class RequeuedSerializer(serializers.Serializer):
    requeued_failed_tasks = serializers.BooleanField()


class SubscriptionSendFailureSerializer(serializers.ModelSerializer):
    url = SelfLinkField(view_name="failed-task-detail")
    subscription = LinkField(view_name="subscription-detail", read_only=True)
    subscription_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = SubscriptionSendFailure
        fields = ["url", "id", "subscription", "subscription_id", "task_id", "initiated_at", "reason"]
        read_only_fields = fields


class BehindSubscriptionSerializer(serializers.ModelSerializer):
    subscription = LinkField(view_name="subscription-detail", read_only=True)
    subscription_id = serializers.UUIDField(read_only=True)
    current_messageset = LinkField(view_name="messageset-detail", read_only=True)
    current_messageset_id = serializers.IntegerField(read_only=True)
    current_messageset_name = serializers.CharField(source="current_messageset.short_name", read_only=True)
    expected_messageset = LinkField(view_name="messageset-detail", read_only=True)
    expected_messageset_id = serializers.IntegerField(read_only=True)
    expected_messageset_name = serializers.CharField(source="expected_messageset.short_name", read_only=True)

    class Meta:
        model = BehindSubscription
        fields = [
            "id",
            "subscription",
            "subscription_id",
            "messages_behind",
            "current_messageset",
            "current_messageset_id",
            "current_messageset_name",
            "current_sequence_number",
            "expected_messageset",
            "expected_messageset_id",
            "expected_messageset_name",
            "expected_sequence_number",
            "created_at",
        ]
        read_only_fields = fields


class MetricsAvailableSerializer(serializers.Serializer):
    metrics_available = serializers.ListField(child=serializers.CharField())


class MetricsStartedSerializer(serializers.Serializer):
    scheduled_metrics_initiated = serializers.BooleanField()
