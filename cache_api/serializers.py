from rest_framework import serializers

from .models import Cache


class CacheSerializer(serializers.ModelSerializer):
    class Meta:
        model = Cache
        fields = ["name", "created_at", "max_item_bytes", "max_ttl_seconds"]
        read_only_fields = ["name", "created_at"]
        extra_kwargs = {"max_item_bytes": {"min_value": 1}, "max_ttl_seconds": {"min_value": 1}}
