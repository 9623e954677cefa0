from django.apps import AppConfig


class CacheApiConfig(AppConfig):
    name = "cache_api"
    verbose_name = "Caches"
