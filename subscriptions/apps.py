from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscriptions"

    def ready(self) -> None:
        from core.outbound import parse_networks

        try:
            parse_networks(settings.METRICS_ALLOWED_NETWORKS)
        except ValueError as error:
            raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {error}") from None
        if any(delay < 0 for delay in settings.SEND_RETRY_DELAYS):
            raise ImproperlyConfigured("SEND_RETRY_DELAYS must not hold negative seconds.")
