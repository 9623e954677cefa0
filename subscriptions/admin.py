"""Subscriptions and the send pipeline's records in Django's admin; writes and sends go through the services."""

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.shortcuts import redirect

from core.admin import ReadOnlyInline, ServiceAdmin

from . import services
from .models import BehindSubscription, EstimatedSend, SendBatch, SendRun, Subscription, SubscriptionSendFailure


@admin.register(Subscription)
class SubscriptionAdmin(ServiceAdmin):
    list_display = [
        "id",
        "identity",
        "messageset",
        "next_sequence_number",
        "lang",
        "schedule",
        "active",
        "completed",
        "process_status",
        "created_at",
    ]
    list_filter = ["messageset", "schedule", "process_status", "active", "completed", "lang"]
    list_select_related = ["messageset", "schedule"]
    search_fields = ["=id", "identity"]
    raw_id_fields = ["created_by", "updated_by"]
    readonly_fields = ["id", "created_at", "updated_at", "created_by", "updated_by"]
    actions = ["send_next_now", "resend", "deactivate"]
    show_full_result_count = False

    def create_record(self, request, data):
        return services.subscription_create(created_by=request.user, via="admin", **data)

    def update_record(self, request, obj, changed) -> None:
        services.subscription_update(subscription=obj, updated_by=request.user, **changed)

    def delete_model(self, request, obj) -> None:
        services.subscription_delete(subscription=obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for subscription in queryset:
                services.subscription_delete(subscription=subscription)

    @admin.action(description="Send the next message now")
    def send_next_now(self, request, queryset: QuerySet) -> None:
        queued, refused = 0, []
        for subscription in queryset.select_related("messageset"):
            refusal = services.subscription_send_queue(subscription=subscription)
            if refusal is None:
                queued += 1
            else:
                refused.append(f"{subscription.pk}: {refusal}")
        if queued:
            self.message_user(request, f"Queued the next message of {queued} subscription(s).")
        for line in refused:
            self.message_user(request, f"Not sent: {line}", level=messages.WARNING)

    @admin.action(description="Resend the current message")
    def resend(self, request, queryset: QuerySet) -> None:
        count = 0
        for subscription in queryset:
            services.resend_request_create(subscription=subscription)
            count += 1
        self.message_user(request, f"Queued the resend of {count} subscription(s)' current message.")

    @admin.action(description="Deactivate")
    def deactivate(self, request, queryset: QuerySet) -> None:
        count = 0
        with transaction.atomic():
            for subscription in queryset.filter(active=True):
                services.subscription_deactivate(subscription=subscription, updated_by=request.user)
                count += 1
        self.message_user(request, f"Deactivated {count} subscription(s).")


@admin.register(SubscriptionSendFailure)
class SubscriptionSendFailureAdmin(ServiceAdmin):
    list_display = ["id", "subscription", "sequence_number", "initiated_at", "reason"]
    list_select_related = ["subscription"]
    search_fields = ["=subscription__id", "subscription__identity", "reason"]
    readonly_fields = ["subscription", "task_id", "initiated_at", "reason", "sequence_number"]
    actions = ["requeue"]
    change_list_template = "admin/subscriptions/subscriptionsendfailure/change_list.html"
    extra_views = (("requeue-all/", "requeue_all", "requeue_all"),)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Requeue (send again)")
    def requeue(self, request, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        services.subscription_failures_requeue_queue(failure_ids=ids)
        self.message_user(request, f"Queued {len(ids)} failure(s) to be sent again.")

    def requeue_all(self, request):
        if request.method == "POST" and self.has_change_permission(request):
            services.subscription_failures_requeue_all_queue()
            self.message_user(request, "Queued every failure to be sent again.")
        return redirect("admin:subscriptions_subscriptionsendfailure_changelist")


@admin.register(BehindSubscription)
class BehindSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["subscription", "messages_behind", "current_messageset", "expected_messageset", "created_at"]
    list_filter = ["messages_behind", "current_messageset"]
    list_select_related = ["subscription", "current_messageset", "expected_messageset"]
    raw_id_fields = ["subscription"]
    readonly_fields = ["created_at"]


@admin.register(EstimatedSend)
class EstimatedSendAdmin(admin.ModelAdmin):
    list_display = ["send_date", "messageset", "estimate_subscriptions", "estimate_identities"]
    list_filter = ["send_date", "messageset"]
    list_select_related = ["messageset"]


class SendBatchInline(ReadOnlyInline):
    model = SendBatch
    fields = ["id", "size", "queued_at", "done_at", "sent", "failed", "skipped"]


@admin.register(SendRun)
class SendRunAdmin(admin.ModelAdmin):
    list_display = ["schedule", "period_start", "started_at", "finished_at", "abandoned"]
    list_filter = ["schedule", "abandoned"]
    list_select_related = ["schedule"]
    readonly_fields = ["id", "schedule", "period_start", "started_at", "walked_at", "finished_at", "abandoned"]
    inlines = [SendBatchInline]

    def has_add_permission(self, request) -> bool:
        return False
