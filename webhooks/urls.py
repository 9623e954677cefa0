from django.urls import re_path

from .views import WebhookViewSet

CACHE = r"^caches/(?P<cache>[^/]+)/webhooks"
NAME = r"(?P<name>[^/]+)"

urlpatterns = [
    re_path(rf"{CACHE}/?$", WebhookViewSet.as_view({"get": "list"}), name="webhook-list"),
    re_path(
        rf"{CACHE}/{NAME}/?$",
        WebhookViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="webhook-detail",
    ),
    re_path(
        rf"{CACHE}/{NAME}/rotate-secret/?$",
        WebhookViewSet.as_view({"post": "rotate_secret"}),
        name="webhook-rotate-secret",
    ),
    re_path(
        rf"{CACHE}/{NAME}/deliveries/?$",
        WebhookViewSet.as_view({"get": "deliveries"}),
        name="webhook-deliveries",
    ),
]
