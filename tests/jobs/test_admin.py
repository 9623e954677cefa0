import pytest
from django.urls import reverse

from jobs.models import Job, JobState

from .helpers import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_job_list_filters_by_state(admin_client, owner):
    user, _ = owner
    make_job(user, "https://example.org/waiting")
    failed = make_job(user, "https://example.org/failed")
    Job.objects.filter(pk=failed.pk).update(state=JobState.FAILED)
    response = admin_client.get(reverse("admin:jobs_job_changelist"), {"state__exact": "failed"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [Job.objects.get(pk=failed.pk)]


def test_a_job_page_shows_its_attempts(admin_client, owner, target, run_due):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("teapot", status=418)
    job = make_job(user, target.url_for("/hook"))
    run_due()
    response = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk]))
    assert response.status_code == 200
    assert b"HTTP 418" in response.content
    assert b"teapot" in response.content
    assert b'name="attempts-0-error"' not in response.content  # shown, not editable


def test_retry_now_sends_a_failed_job_again_at_once(admin_client, owner, clock, run_due, target):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"))
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED, next_attempt_at=None, attempt_count=6)
    response = admin_client.post(
        reverse("admin:jobs_job_changelist"), {"action": "retry_now", "_selected_action": [str(job.pk)]}
    )
    assert response.status_code == 302
    assert run_due() == 1
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED


def test_cancel_stops_a_scheduled_job(admin_client, owner, run_due):
    user, _ = owner
    job = make_job(user, "https://example.org/hook")
    admin_client.post(reverse("admin:jobs_job_changelist"), {"action": "cancel", "_selected_action": [str(job.pk)]})
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED
    assert run_due() == 0


def test_jobs_are_not_added_through_the_admin(admin_client):
    assert admin_client.get(reverse("admin:jobs_job_add")).status_code == 403
