"""Topic webhooks per cache, with their recent deliveries and failures. Set through the API only
(it shows the secret once); the admin may remove one."""

from django.contrib import admin
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html

from jobs.models import JobState
from jobs.values import without_userinfo

from . import services
from .models import TopicWebhook, WebhookDelivery

RECENT = 20


class RecentFormSet(BaseInlineFormSet):
    """Only the latest RECENT deliveries of the webhook."""

    def get_queryset(self):
        if not hasattr(self, "_recent"):
            ids = list(super().get_queryset().order_by("-id").values_list("id", flat=True)[:RECENT])
            self._recent = self.queryset.filter(id__in=ids).order_by("-id").select_related("job")
        return self._recent


class RecentDeliveries(admin.TabularInline):
    """The latest deliveries: the message, its job (with its attempts) and how it went."""

    model = WebhookDelivery
    formset = RecentFormSet
    fields = ["page", "seq", "job_link", "state", "attempts", "created_at"]
    readonly_fields = fields
    can_delete = False
    extra = 0
    max_num = 0
    verbose_name_plural = f"recent deliveries (latest {RECENT})"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="job")
    def job_link(self, delivery: WebhookDelivery) -> str:
        url = reverse("admin:jobs_job_change", args=[delivery.job_id])
        return format_html('<a href="{}">{}</a>', url, delivery.job_id)

    @admin.display(description="state")
    def state(self, delivery: WebhookDelivery) -> str:
        return delivery.job.state

    @admin.display(description="attempts")
    def attempts(self, delivery: WebhookDelivery) -> int:
        return delivery.job.attempt_count


@admin.register(TopicWebhook)
class TopicWebhookAdmin(admin.ModelAdmin):
    list_display = ["name", "cache", "topic", "shown_destination", "user", "last_seq", "failures", "discontinuities"]
    list_filter = ["cache"]
    list_select_related = ["cache", "user"]
    search_fields = ["name", "topic", "cache__name"]
    fields = [
        "cache",
        "name",
        "topic",
        "shown_destination",
        "user",
        "page",
        "last_seq",
        "pending",
        "discontinuities",
        "skipped",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    inlines = [RecentDeliveries]

    def get_queryset(self, request):
        failed = Count("deliveries", filter=Q(deliveries__job__state=JobState.FAILED))
        return super().get_queryset(request).annotate(failures=failed)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="destination")
    def shown_destination(self, webhook: TopicWebhook) -> str:
        return without_userinfo(webhook.destination)

    @admin.display(description="failed deliveries", ordering="failures")
    def failures(self, webhook: TopicWebhook) -> int:
        return webhook.failures

    def delete_model(self, request, obj: TopicWebhook) -> None:
        services.webhook_delete(webhook=obj)

    def delete_queryset(self, request, queryset) -> None:
        for webhook in queryset:
            services.webhook_delete(webhook=webhook)
