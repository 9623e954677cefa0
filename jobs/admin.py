"""Jobs in the admin: watched, retried and cancelled (through the services), never written by hand.

URIs are shown without credentials a row may hold from before they were refused; the dates
browsed by are the creation dates, which the service sets (a job's `at` is the client's).
Owners' signing secrets are listed by their metadata only; their values never reach the admin.
Owners' queues are watched, and their flow control changed, paused, purged and removed, through
the services and by the API's rules.
"""

from django import forms
from django.contrib import admin, messages

from core.admin import ReadOnlyInline

from . import clock, selectors, services, values
from .errors import JobNotFound, QueueNotEmpty
from .models import Attempt, Job, JobKind, JobQueue, SigningSecret
from .serializers import JobQueueInputSerializer

QUEUE_SETTINGS = ("parallelism", "rate_per_second", "paused")


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
    search_fields = ["=id", "=deduplication_id", "uri", "queue__name", "user__username", "user__email"]
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
        "queue",
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


class JobQueueForm(forms.ModelForm):
    """A queue's settings, checked by the API's rules (JobQueueInputSerializer)."""

    class Meta:
        model = JobQueue
        fields = list(QUEUE_SETTINGS)

    def clean(self):
        cleaned = super().clean()
        checked = JobQueueInputSerializer(data={name: cleaned.get(name) for name in QUEUE_SETTINGS})
        if not checked.is_valid():
            for name, errors in checked.errors.items():
                self.add_error(name if name in self.fields else None, [str(error) for error in errors])
        return cleaned


@admin.register(JobQueue)
class JobQueueAdmin(admin.ModelAdmin):
    """Queues are made by their owners through the API. Here their parallelism, rate and pause are
    changed as the API changes them (a changed rate starts with a full bucket; waiting dispatchers
    are told), and they are paused, resumed, purged and removed (once empty)."""

    form = JobQueueForm
    list_display = ["name", "user", "parallelism", "rate_per_second", "paused", "depth", "in_flight"]
    list_filter = ["paused"]
    search_fields = ["name", "user__username", "user__email"]
    list_select_related = ["user"]
    ordering = ["user__username", "name"]
    fields = ["user", "name", *QUEUE_SETTINGS, "depth", "in_flight", "created_at", "updated_at"]
    readonly_fields = ["user", "name", "depth", "in_flight", "created_at", "updated_at"]
    actions = ["pause", "resume", "purge", "remove"]

    def get_queryset(self, request):
        return selectors.queues_counted(super().get_queryset(request), now=clock.now())

    @admin.display(description="depth (scheduled)", ordering="depth")
    def depth(self, queue: JobQueue) -> int:
        return queue.depth

    @admin.display(description="in flight", ordering="in_flight")
    def in_flight(self, queue: JobQueue) -> int:
        return queue.in_flight

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the "remove" action removes empty queues only

    def save_model(self, request, obj: JobQueue, form, change) -> None:
        changes = {name: form.cleaned_data[name] for name in QUEUE_SETTINGS if name in form.changed_data}
        services.queue_set(user=obj.user, name=obj.name, **changes)

    def _set(self, request, queryset, verb: str, **settings) -> None:
        for queue in queryset:
            services.queue_set(user=queue.user, name=queue.name, **settings)
        self.message_user(request, f"{len(queryset)} queue(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Pause (their jobs wait)")
    def pause(self, request, queryset) -> None:
        self._set(request, queryset, "paused", paused=True)

    @admin.action(description="Resume")
    def resume(self, request, queryset) -> None:
        self._set(request, queryset, "resumed", paused=False)

    @admin.action(description="Purge (cancel their scheduled jobs; those in flight finish)")
    def purge(self, request, queryset) -> None:
        cancelled = sum(services.queue_purge(queue=queue) for queue in queryset)
        self.message_user(request, f"{cancelled} scheduled job(s) cancelled.", messages.SUCCESS)

    @admin.action(description="Remove (empty queues only)")
    def remove(self, request, queryset) -> None:
        removed = 0
        for queue in queryset:
            try:
                services.queue_delete(queue=queue)
            except QueueNotEmpty as error:
                self.message_user(request, str(error.detail), messages.ERROR)
            except JobQueue.DoesNotExist:
                continue  # removed meanwhile
            else:
                removed += 1
        self.message_user(request, f"{removed} queue(s) removed.", messages.SUCCESS)
