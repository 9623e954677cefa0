import django_filters

from core.filters import FilterSet

from .models import Job, JobState


class JobFilter(FilterSet):
    state = django_filters.MultipleChoiceFilter(
        choices=JobState.choices,
        help_text="Only jobs in this state (repeat for several); `failed` is the dead-letter list.",
    )
    at_after = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte", help_text="Due at or after.")
    at_before = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt", help_text="Due before.")

    class Meta:
        model = Job
        fields = ["state", "at_after", "at_before"]
