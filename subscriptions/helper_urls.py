"""Helper routes outside the versioned API: `/api/metrics/` (the reference's) and `/metrics` (Prometheus)."""

from django.urls import re_path

from . import views

urlpatterns = [
    re_path(r"^api/metrics/?$", views.MetricsView.as_view(), name="metrics"),
    re_path(r"^metrics/?$", views.prometheus_metrics, name="prometheus-metrics"),
]
