from django.apps import AppConfig


class ContentstoreConfig(AppConfig):
    name = "contentstore"
    verbose_name = "Content store"
