"""Jobs in the admin: watched, retried and cancelled (through the services), never written by hand.

URIs are shown without credentials a row may hold from before they were refused; the dates
browsed by are the creation dates, which the service sets (a job's `at` is the client's).
Owners' signing secrets are listed by their metadata only; their values never reach the admin.
"""

from django.contrib import admin, messages

from core.admin import ReadOnlyInline

from . import services, values
from .errors import JobNotFound
from .models import Attempt, Job, JobKind, SigningSecret


def _shown(name: str, label: str):
    """An admin column showing the URI field `name` with credentials masked."""

    @admin.display(description=label, ordering=name)
    def column(self, job: Job) -> str:
        return values.without_userinfo(getattr(job, name))

    column.__name__ = f"shown_{name}"
    return column


def _each_still_there(queryset, action) -> int:
    """`action(job=job)` for each selected job, skipping those deleted since the page was shown or
    while the action waited for them; how many it was done to."""
    done = 0
    for job in queryset:
        try:
            action(job=job)
        except JobNotFound:
            continue
        done += 1
    return done


class AttemptInline(ReadOnlyInline):
    model = Attempt
    fields = ["number", "outcome", "started_at", "duration_ms", "status_code", "error", "body_excerpt"]
    ordering = ["started_at", "id"]


class CallbackInline(ReadOnlyInline):
    model = Job
    fk_name = "parent"
    show_change_link = True
    fields = ["kind", "shown_uri", "state", "attempt_count", "next_attempt_at", "finished_at"]
    readonly_fields = fields
    verbose_name = "callback"
    shown_uri = _shown("uri", "uri")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Jobs are created through the API; here they are watched, retried and cancelled."""

    list_display = ["id", "kind", "method", "shown_uri", "at", "state", "attempt_count", "next_attempt_at", "user"]
    list_filter = ["state", "kind", "method", "at"]
    search_fields = ["=id", "=deduplication_id", "uri", "user__username", "user__email"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    inlines = [AttemptInline, CallbackInline]
    actions = ["retry_now", "cancel"]
    fields = [
        "id",
        "user",
        "kind",
        "parent",
        "method",
        "shown_uri",
        "at",
        "headers",
        "body",
        "timeout",
        "retry_schedule",
        "deduplication_id",
        "shown_callback_uri",
        "shown_failure_callback_uri",
        "state",
        "next_attempt_at",
        "first_attempt_at",
        "attempt_count",
        "attempt_started_at",
        "delivery_id",
        "lease",
        "finished_at",
        "cron",
        "time_zone",
        "paused",
        "next_run_at",
        "last_run_at",
        "recurring_job_id",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    shown_uri = _shown("uri", "uri")
    shown_callback_uri = _shown("callback_uri", "callback uri")
    shown_failure_callback_uri = _shown("failure_callback_uri", "failure callback uri")

    def has_add_permission(self, request) -> bool:
        return False

    def get_inlines(self, request, obj):
        if obj is not None and obj.kind != JobKind.REQUEST:
            return [AttemptInline]
        return super().get_inlines(request, obj)

    @admin.action(description="Retry now (send at once, with a fresh retry schedule)")
    def retry_now(self, request, queryset) -> None:
        done = _each_still_there(queryset, services.job_run_now)
        self.message_user(request, f"{done} job(s) will be sent now.", messages.SUCCESS)

    @admin.action(description="Cancel (do not send again)")
    def cancel(self, request, queryset) -> None:
        done = _each_still_there(queryset, services.job_cancel)
        self.message_user(request, f"{done} job(s) cancelled.", messages.SUCCESS)


@admin.register(SigningSecret)
class SigningSecretAdmin(admin.ModelAdmin):
    """Which secrets sign whose jobs, and until when. Deleting one revokes it: its owner's next
    delivery makes a new one, which they see once through the API."""

    list_display = ["fingerprint", "user", "keyring", "created_at", "shown_at", "expires_at"]
    list_select_related = ["user"]
    search_fields = ["=fingerprint", "user__username", "user__email"]
    ordering = ["-created_at"]
    fields = ["fingerprint", "user", "keyring", "created_at", "shown_at", "expires_at"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False
