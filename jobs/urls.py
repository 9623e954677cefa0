from django.urls import path, re_path

from . import views

urlpatterns = [
    path("jobs.json", views.JobCollectionView.as_view(), name="job-list"),
    path("jobs/<str:job_id>/retry.json", views.JobRetryView.as_view(), name="job-retry"),
    path("jobs/<str:job_id>.json", views.JobView.as_view(), name="job-detail"),
    re_path(r"^jobs(?:/.*)?$", views.unknown_path),
]
