"""Caches in the admin site: who created each; deleting one purges its items."""

from django.contrib import admin
from django.db import transaction

from . import services
from .models import Cache
from .selectors import announce_created_cache


@admin.register(Cache)
class CacheAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "created_at", "max_item_bytes", "max_ttl_seconds"]
    list_select_related = ["created_by"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # Items are stored under the cache's id, so renaming is safe, but a
        # name is what clients and tokens use: keep it fixed once created.
        return ["name", *self.readonly_fields] if obj else self.readonly_fields

    def save_model(self, request, obj: Cache, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if not change:
            transaction.on_commit(announce_created_cache)

    def delete_model(self, request, obj: Cache) -> None:
        services.cache_delete(cache=obj)

    def delete_queryset(self, request, queryset) -> None:
        for cache in queryset:
            services.cache_delete(cache=cache)
