from django.apps import AppConfig


class AdoptingConfig(AppConfig):
    """Taking over an existing deployment of the reference store (`manage.py import_upstream`); no models."""

    name = "adopting"
