"""The service's FilterSet: a whole-number field is filtered by whole numbers only.

django-filter reads a number filter as a decimal, so `?sequence_number=0.5` would
answer an empty page instead of saying the value is wrong; here it is a 400.
"""

import django_filters
from django import forms
from django.db import models


class IntegerFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class FilterSet(django_filters.FilterSet):
    FILTER_DEFAULTS = {
        **django_filters.FilterSet.FILTER_DEFAULTS,
        **{
            field: {"filter_class": IntegerFilter}
            for field in django_filters.FilterSet.FILTER_DEFAULTS
            if issubclass(field, models.IntegerField)
        },
    }
