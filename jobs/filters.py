"""The filters of a jobs list; a time a client filters by follows the rule of a job's time (`values`)."""

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from core.filters import FilterSet

from . import values
from .models import LISTED_KINDS, Job, JobState


class JobTimeFormField(IsoDateTimeField):
    """An ISO 8601 time within the times a job may have."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return values.time_in_range(moment)
        except values.InvalidValue as error:
            raise forms.ValidationError(str(error)) from None


class JobTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = JobTimeFormField


class JobFilter(FilterSet):
    state = django_filters.MultipleChoiceFilter(
        choices=JobState.choices,
        help_text="Only jobs in this state (repeat for several); `failed` is the dead-letter list.",
    )
    kind = django_filters.ChoiceFilter(
        choices=LISTED_KINDS,
        help_text="`recurring`: only recurring jobs; `request`: only one-off jobs and firings of recurring ones.",
    )
    recurring_job = django_filters.UUIDFilter(
        field_name="recurring_job_id", help_text="Only the firings of this recurring job (its id)."
    )
    at_after = JobTimeFilter(field_name="at", lookup_expr="gte", help_text="Due at or after.")
    at_before = JobTimeFilter(field_name="at", lookup_expr="lt", help_text="Due before.")

    class Meta:
        model = Job
        fields = ["state", "kind", "recurring_job", "at_after", "at_before"]
