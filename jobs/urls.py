from django.urls import path, re_path

from . import signing_secrets, views

urlpatterns = [
    path("jobs.json", views.JobCollectionView.as_view(), name="job-list"),
    path("jobs/batch.json", views.JobBatchView.as_view(), name="job-batch"),
    path("jobs/signing-secret.json", signing_secrets.SigningSecretView.as_view(), name="job-signing-secret"),
    path(
        "jobs/signing-secret/rotate.json",
        signing_secrets.SigningSecretRotationView.as_view(),
        name="job-signing-secret-rotate",
    ),
    path("jobs/<str:job_id>/retry.json", views.JobRetryView.as_view(), name="job-retry"),
    path("jobs/<str:job_id>.json", views.JobView.as_view(), name="job-detail"),
    re_path(r"^jobs(?:/.*)?$", views.unknown_path),
]
