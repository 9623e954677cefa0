import json

import django_filters
from django import forms
from django.core.exceptions import ValidationError

from core.filters import FilterSet, IntegerFilter

from .models import ProcessStatus, Subscription

TRUE_WORDS = {"true", "1"}
FALSE_WORDS = {"false", "0"}


class LooseBooleanField(forms.Field):
    """true/false or 1/0, in any case."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValidationError(f"'{value}' is not a boolean: use true or false (or 1 or 0).", code="invalid")


class LooseBooleanFilter(django_filters.Filter):
    field_class = LooseBooleanField


class JSONValueField(forms.CharField):
    """A JSON value (the whole of it)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value in (None, ""):
            return None
        try:
            return {"value": json.loads(value)}
        except ValueError:
            raise ValidationError(
                'Not JSON: give the metadata as a JSON object, e.g. {"a": 1}.', code="invalid"
            ) from None


class JSONExactFilter(django_filters.Filter):
    """Exact match of a JSON field (`null` matches no metadata)."""

    field_class = JSONValueField

    def filter(self, queryset, value):
        if value is None:
            return queryset
        if value["value"] is None:
            return queryset.filter(**{f"{self.field_name}__isnull": True})
        return queryset.filter(**{self.field_name: value["value"]})


class SubscriptionFilter(FilterSet):
    """Exact match on every field; booleans as true/false or 1/0 in any case."""

    id = django_filters.UUIDFilter()
    identity = django_filters.CharFilter()
    version = IntegerFilter()
    messageset = IntegerFilter(field_name="messageset_id", help_text="The message set's id.")
    initial_sequence_number = IntegerFilter()
    next_sequence_number = IntegerFilter()
    lang = django_filters.CharFilter()
    active = LooseBooleanFilter()
    completed = LooseBooleanFilter()
    schedule = IntegerFilter(field_name="schedule_id", help_text="The schedule's id.")
    process_status = django_filters.TypedChoiceFilter(choices=ProcessStatus.choices, coerce=int)
    metadata = JSONExactFilter(help_text="The whole metadata, as JSON.")
    created_at = django_filters.IsoDateTimeFilter()
    updated_at = django_filters.IsoDateTimeFilter()
    created_by = IntegerFilter(field_name="created_by_id", help_text="The creating user's id.")
    updated_by = IntegerFilter(field_name="updated_by_id", help_text="The last updating user's id.")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")
    metadata_has_key = django_filters.CharFilter(field_name="metadata", lookup_expr="has_key")
    metadata_not_has_key = django_filters.CharFilter(field_name="metadata", lookup_expr="has_key", exclude=True)
    messageset_contains = django_filters.CharFilter(
        field_name="messageset__short_name", lookup_expr="contains", help_text="Part of the set's short_name."
    )

    class Meta:
        model = Subscription
        fields = []
