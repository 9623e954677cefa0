"""The jobs face's /api/v1/ endpoints: job queues."""

from django.urls import re_path

from .queue_views import JobQueueViewSet

QUEUES = r"^job-queues"
NAME = r"(?P<name>[^/]+)"

urlpatterns = [
    re_path(rf"{QUEUES}/?$", JobQueueViewSet.as_view({"get": "list"}), name="job-queue-list"),
    re_path(
        rf"{QUEUES}/{NAME}/?$",
        JobQueueViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="job-queue-detail",
    ),
    re_path(rf"{QUEUES}/{NAME}/purge/?$", JobQueueViewSet.as_view({"post": "purge"}), name="job-queue-purge"),
]
