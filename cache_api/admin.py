from django.contrib import admin

from . import services
from .models import Cache


@admin.register(Cache)
class CacheAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "max_item_bytes", "max_ttl_seconds"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]

    def get_readonly_fields(self, request, obj=None):
        # Items are stored under the cache's id, so renaming is safe, but a
        # name is what clients and tokens use: keep it fixed once created.
        return ["name", "created_at"] if obj else ["created_at"]

    def delete_model(self, request, obj: Cache) -> None:
        services.cache_delete(cache=obj)

    def delete_queryset(self, request, queryset) -> None:
        for cache in queryset:
            services.cache_delete(cache=cache)
