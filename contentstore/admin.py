import io

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import slugify

from . import selectors, services
from .errors import ContentInUse, MessageImportError
from .models import BinaryContent, Message, MessageSet, Schedule
from .validators import CRON_FIELDS

# How many coming run times a schedule shows: in the list, on its page.
RUN_TIMES_LISTED = 3
RUN_TIMES_SHOWN = 5


def _run_times(schedule: Schedule, count: int) -> str:
    try:
        times = schedule.run_times(count=count)
    except (ValueError, KeyError):
        return "(not a valid cron string)"
    return format_html_join(mark_safe("<br>"), "{}", ((f"{time:%a %Y-%m-%d %H:%M %Z}",) for time in times))


class InUseFilter(admin.SimpleListFilter):
    title = "in use"
    parameter_name = "in_use"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(use_count__gt=0)
        if self.value() == "no":
            return queryset.filter(use_count=0)
        return queryset


class ContentAdmin(admin.ModelAdmin):
    """Deletes go through the services, which refuse (with a message) while something uses the record."""

    def delete_record(self, obj) -> None:
        obj.delete()

    def delete_model(self, request, obj) -> None:
        self.delete_record(obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            try:
                self.delete_record(obj)
            except ContentInUse as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)


# --- Schedules ------------------------------------------------------------------


@admin.register(Schedule)
class ScheduleAdmin(ContentAdmin):
    list_display = ["id", "cron", "next_run_times", "use_count", "scheduler_task"]
    list_filter = [("periodic_task", admin.EmptyFieldListFilter)]
    search_fields = list(CRON_FIELDS)
    list_select_related = ["periodic_task"]
    fields = [*CRON_FIELDS, "cron", "coming_run_times", "scheduler_task"]
    readonly_fields = ["cron", "coming_run_times", "scheduler_task"]
    actions = ["sync_periodic_tasks"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(use_count=Count("message_sets"))

    @admin.display(description="cron (m h dom mon dow)")
    def cron(self, schedule: Schedule) -> str:
        return schedule.cron_string

    @admin.display(description="next runs")
    def next_run_times(self, schedule: Schedule) -> str:
        return _run_times(schedule, RUN_TIMES_LISTED)

    @admin.display(description="coming run times")
    def coming_run_times(self, schedule: Schedule) -> str:
        return _run_times(schedule, RUN_TIMES_SHOWN) if schedule.pk else "-"

    @admin.display(description="message sets", ordering="use_count")
    def use_count(self, schedule: Schedule) -> int:
        return schedule.use_count

    @admin.display(description="scheduler task")
    def scheduler_task(self, schedule: Schedule) -> str:
        task = schedule.periodic_task
        if task is None:
            return "none: save the schedule or use the action to make it"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        return format_html('<a href="{}">{}</a>{}', url, task.name, "" if task.enabled else " (disabled)")

    def save_model(self, request, obj, form, change) -> None:
        cron = {name: form.cleaned_data[name] for name in CRON_FIELDS}
        if change:
            services.schedule_update(schedule=obj, **cron)
            return
        created = services.schedule_create(**cron)
        obj.pk, obj.periodic_task = created.pk, created.periodic_task
        obj._state.adding = False

    def delete_record(self, obj) -> None:
        services.schedule_delete(schedule=obj)

    @admin.action(description="Make or correct the scheduler tasks of the selected schedules")
    def sync_periodic_tasks(self, request, queryset) -> None:
        for schedule in queryset:
            services.schedule_sync_periodic_task(schedule=schedule)
        self.message_user(request, f"Scheduler tasks in step for {len(queryset)} schedule(s).")


# --- Message sets ---------------------------------------------------------------


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["sequence_number", "lang", "text_content", "binary_content", "metadata"]
    raw_id_fields = ["binary_content"]
    ordering = ["sequence_number", "lang"]
    extra = 0
    show_change_link = True
    formfield_overrides = {
        Message._meta.get_field("text_content").__class__: {"widget": forms.Textarea(attrs={"rows": 3, "cols": 60})}
    }


class CloneMessageSetForm(forms.Form):
    short_name = forms.CharField(max_length=100, label="Short name of the copy")

    def clean_short_name(self) -> str:
        short_name = self.cleaned_data["short_name"]
        if MessageSet.objects.filter(short_name=short_name).exists():
            raise forms.ValidationError("A message set with this short name exists already.")
        return short_name


class ImportMessagesForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns sequence_number, lang, text_content; optional binary_content (id or file name) "
        "and metadata (a JSON object). UTF-8.",
    )
    replace = forms.BooleanField(
        required=False, label="Replace", help_text="Delete this set's messages that the file does not list."
    )


@admin.register(MessageSet)
class MessageSetAdmin(ContentAdmin):
    list_display = [
        "short_name",
        "label",
        "content_type",
        "channel",
        "default_schedule",
        "next_set",
        "message_count",
        "updated_at",
    ]
    list_filter = ["content_type", "channel", "default_schedule"]
    search_fields = ["short_name", "label", "notes"]
    list_select_related = ["default_schedule", "next_set"]
    fields = ["short_name", "label", "content_type", "channel", "default_schedule", "next_set", "notes"]
    inlines = [MessageInline]
    actions = ["clone", "export_messages"]
    change_form_template = "admin/contentstore/messageset/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_count=Count("messages"))

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, messageset: MessageSet) -> int:
        return messageset.message_count

    def delete_record(self, obj) -> None:
        services.messageset_delete(messageset=obj)

    def get_urls(self):
        return [
            path(
                "<int:pk>/import/",
                self.admin_site.admin_view(self.import_view),
                name="contentstore_messageset_import",
            ),
            path(
                "<int:pk>/export/",
                self.admin_site.admin_view(self.export_view),
                name="contentstore_messageset_export",
            ),
            *super().get_urls(),
        ]

    def _only_one(self, request, queryset) -> MessageSet | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one message set for this action.", messages.WARNING)
            return None
        return queryset.get()

    @admin.action(description="Clone the selected message set, with its messages")
    def clone(self, request, queryset):
        original = self._only_one(request, queryset)
        if original is None:
            return None
        form = CloneMessageSetForm(request.POST if "clone" in request.POST else None)
        if form.is_valid():
            try:
                copy = services.messageset_clone(messageset=original, short_name=form.cleaned_data["short_name"])
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(request, f"Cloned {original} as {copy} with {copy.messages.count()} message(s).")
                return HttpResponseRedirect(reverse("admin:contentstore_messageset_change", args=[copy.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Clone message set {original}",
            "opts": self.model._meta,
            "original": original,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/contentstore/messageset/clone.html", context)

    def _csv_response(self, messageset: MessageSet) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{slugify(messageset.short_name)}-messages.csv"'
        selectors.message_export_csv(messageset=messageset, file=response)
        return response

    @admin.action(description="Export the selected message set's messages as CSV")
    def export_messages(self, request, queryset):
        messageset = self._only_one(request, queryset)
        return None if messageset is None else self._csv_response(messageset)

    def export_view(self, request, pk: int):
        messageset = get_object_or_404(MessageSet, pk=pk)
        if not self.has_view_permission(request, messageset):
            return HttpResponse(status=403)
        return self._csv_response(messageset)

    def import_view(self, request, pk: int):
        messageset = get_object_or_404(MessageSet, pk=pk)
        if not self.has_change_permission(request, messageset):
            return HttpResponse(status=403)
        form = ImportMessagesForm(request.POST or None, request.FILES or None)
        problems: list[str] = []
        if request.method == "POST" and form.is_valid():
            text = io.TextIOWrapper(form.cleaned_data["file"], encoding="utf-8-sig", newline="")
            try:
                result = services.message_import_csv(
                    messageset=messageset, file=text, replace=form.cleaned_data["replace"]
                )
            except MessageImportError as error:
                problems = error.errors
            else:
                self.message_user(
                    request,
                    f"Imported into {messageset}: {result.created} created, {result.updated} updated, "
                    f"{result.deleted} deleted.",
                )
                return HttpResponseRedirect(reverse("admin:contentstore_messageset_change", args=[pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import messages into {messageset}",
            "opts": self.model._meta,
            "original": messageset,
            "form": form,
            "problems": problems,
        }
        return TemplateResponse(request, "admin/contentstore/messageset/import.html", context)


# --- Messages -------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(ContentAdmin):
    list_display = ["id", "messageset", "sequence_number", "lang", "text_preview", "binary_content", "updated_at"]
    list_display_links = ["id", "text_preview"]
    list_filter = ["messageset__content_type", "lang", "messageset"]
    search_fields = ["text_content", "messageset__short_name"]
    list_select_related = ["messageset", "binary_content"]
    raw_id_fields = ["binary_content"]
    ordering = ["messageset__short_name", "sequence_number", "lang"]
    fields = ["messageset", "sequence_number", "lang", "text_content", "binary_content", "metadata"]

    @admin.display(description="text")
    def text_preview(self, message: Message) -> str:
        text = message.text_content or ""
        return text if len(text) <= 80 else f"{text[:79]}…"


# --- Binary content -------------------------------------------------------------


@admin.register(BinaryContent)
class BinaryContentAdmin(ContentAdmin):
    list_display = ["id", "file_name", "link", "use_count", "created_at"]
    list_filter = [InUseFilter, "created_at"]
    search_fields = ["content"]
    fields = ["content", "link", "created_at", "updated_at"]
    readonly_fields = ["link", "created_at", "updated_at"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(use_count=Count("messages"))

    @admin.display(description="file", ordering="content")
    def file_name(self, item: BinaryContent) -> str:
        return item.file_name

    @admin.display(description="link")
    def link(self, item: BinaryContent) -> str:
        return format_html('<a href="{}">{}</a>', item.content.url, item.content.url) if item.content else "-"

    @admin.display(description="messages", ordering="use_count")
    def use_count(self, item: BinaryContent) -> int:
        return item.use_count

    def save_model(self, request, obj, form, change) -> None:
        if change:
            if "content" in form.changed_data:
                services.binary_content_update(binary_content=obj, content=form.cleaned_data["content"])
            return
        created = services.binary_content_create(content=form.cleaned_data["content"])
        obj.pk, obj.content = created.pk, created.content
        obj._state.adding = False

    def delete_record(self, obj) -> None:
        services.binary_content_delete(binary_content=obj)
