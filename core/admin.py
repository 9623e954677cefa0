"""What the apps' admin pages share: saves that go through the services, views of their own, read-only rows.

The admin is another face of the services, like the API: a record added or changed
here is written by the same service function, with the same rules and side effects.
"""

from django.contrib import admin
from django.db import models
from django.urls import path

from .models import LeaderLease


class ServiceAdmin(admin.ModelAdmin):
    """A ModelAdmin that saves through services: `create_record` and `update_record`.

    `extra_views`: the admin's own pages, as (route, name of the view method, url name
    suffix); each is behind the admin's login and named `<app>_<model>_<suffix>`.
    """

    extra_views: tuple[tuple[str, str, str], ...] = ()

    def create_record(self, request, data: dict) -> models.Model:
        """Create the record from the add form's fields, through a service."""
        raise NotImplementedError

    def update_record(self, request, obj: models.Model, changed: dict) -> None:
        """Write the change form's `changed` fields to `obj`, through a service."""
        raise NotImplementedError

    def save_model(self, request, obj, form, change) -> None:
        if change:
            changed = {name: form.cleaned_data[name] for name in form.changed_data}
            if changed:
                self.update_record(request, obj, changed)
            return
        created = self.create_record(request, form.cleaned_data)
        # The admin goes on (history, inlines, redirect) with the record its form built: make it the saved one.
        for field in obj._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False

    def get_urls(self):
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        own = [
            path(route, self.admin_site.admin_view(getattr(self, view)), name=f"{prefix}_{suffix}")
            for route, view, suffix in self.extra_views
        ]
        return [*own, *super().get_urls()]


class ReadOnlyInline(admin.TabularInline):
    """Rows shown on their parent's page as a record of what happened: never added, changed or deleted there."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LeaderLease)
class LeaderLeaseAdmin(admin.ModelAdmin):
    """Which scheduler process leads beat now (the others stand by): a record, never edited here."""

    list_display = ("name", "holder", "token", "acquired_at", "expires_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
