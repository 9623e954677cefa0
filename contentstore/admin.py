"""The content store in Django's admin: every save and delete goes through the services."""

import io

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import slugify

from core.admin import ServiceAdmin

from . import selectors, services
from .errors import ContentInUse, FileStorageUnavailable, MessageImportError
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


def _counted(title: str):
    """A list column showing how many related rows each record has (the `row_count` ContentAdmin annotates)."""
    return admin.display(description=title, ordering="row_count")(lambda model_admin, record: record.row_count)


class InUseFilter(admin.SimpleListFilter):
    title = "in use"
    parameter_name = "in_use"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(row_count__gt=0)
        if self.value() == "no":
            return queryset.filter(row_count=0)
        return queryset


class ContentAdmin(ServiceAdmin):
    """Writes go through the services in `writes`; a delete is refused (with a message) while
    something uses the record. `counted`: the relation whose rows the list counts per record."""

    writes: services.Writes
    counted: str | None = None

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset.annotate(row_count=Count(self.counted)) if self.counted else queryset

    def create_record(self, request, data):
        return self.writes.create(**data)

    def update_record(self, request, obj, changed) -> None:
        self.writes.update_record(obj, changed)

    def delete_model(self, request, obj) -> None:
        self.writes.delete_record(obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            try:
                self.writes.delete_record(obj)
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
    writes = services.SCHEDULE_WRITES
    counted = "message_sets"
    use_count = _counted("message sets")

    @admin.display(description="cron (m h dom mon dow)")
    def cron(self, schedule: Schedule) -> str:
        return schedule.cron_string

    @admin.display(description="next runs")
    def next_run_times(self, schedule: Schedule) -> str:
        return _run_times(schedule, RUN_TIMES_LISTED)

    @admin.display(description="coming run times")
    def coming_run_times(self, schedule: Schedule) -> str:
        return _run_times(schedule, RUN_TIMES_SHOWN) if schedule.pk else "-"

    @admin.display(description="scheduler task")
    def scheduler_task(self, schedule: Schedule) -> str:
        task = schedule.periodic_task
        if task is None:
            return "none: save the schedule or use the action to make it"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        return format_html('<a href="{}">{}</a>{}', url, task.name, "" if task.enabled else " (disabled)")

    @admin.action(description="Make or correct the scheduler tasks of the selected schedules")
    def sync_periodic_tasks(self, request, queryset) -> None:
        for schedule in queryset:
            services.schedule_sync_periodic_task(schedule=schedule)
        self.message_user(request, f"Scheduler tasks in step for {len(queryset)} schedule(s).")


# --- Message sets ---------------------------------------------------------------


class MessageFormSet(forms.BaseInlineFormSet):
    """A set's messages as its page edits them, written through the message services."""

    @staticmethod
    def _fields(form, names) -> dict:
        return {name: form.cleaned_data[name] for name in names if name in MessageInline.fields}

    def save_new(self, form, commit=True):
        return services.message_create(messageset=self.instance, **self._fields(form, MessageInline.fields))

    def save_existing(self, form, obj, commit=True):
        return services.message_update(message=obj, **self._fields(form, form.changed_data))

    def delete_existing(self, obj, commit=True) -> None:
        services.message_delete(message=obj)


class MessageInline(admin.TabularInline):
    model = Message
    formset = MessageFormSet
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
    extra_views = (("<int:pk>/import/", "import_view", "import"), ("<int:pk>/export/", "export_view", "export"))
    writes = services.MESSAGESET_WRITES
    counted = "messages"
    message_count = _counted("messages")

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
    writes = services.MESSAGE_WRITES

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
    writes = services.BINARY_CONTENT_WRITES
    counted = "messages"
    use_count = _counted("messages")

    def changeform_view(self, request, *args, **kwargs):
        """An unreachable file storage is a message on the form's page, not a server error."""
        try:
            return super().changeform_view(request, *args, **kwargs)
        except FileStorageUnavailable as error:
            self.message_user(request, str(error.detail), messages.ERROR)
            return HttpResponseRedirect(request.path)

    @admin.display(description="file", ordering="content")
    def file_name(self, item: BinaryContent) -> str:
        return item.file_name

    @admin.display(description="link")
    def link(self, item: BinaryContent) -> str:
        return format_html('<a href="{}">{}</a>', item.content.url, item.content.url) if item.content else "-"
