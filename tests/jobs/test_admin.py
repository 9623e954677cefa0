import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import services
from jobs.models import Job, JobQueue, JobState

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


def make_queue(user, name: str, **settings) -> JobQueue:
    return services.queue_set(user=user, name=name, **settings)[0]


def test_the_queue_list_shows_each_queues_settings_depth_and_jobs_in_flight(admin_client, owner):
    user, _ = owner
    make_queue(user, "emails", parallelism=2, rate_per_second=5)
    make_queue(user, "idle")
    for _ in range(3):
        make_job(user, "https://example.org/hook", queue="emails")
    Job.objects.filter(pk=make_job(user, "https://example.org/hook", queue="emails").pk).update(state=JobState.RUNNING)

    response = admin_client.get(reverse("admin:jobs_jobqueue_changelist"))
    assert response.status_code == 200
    shown = {queue.name: (queue.depth, queue.in_flight) for queue in response.context["cl"].result_list}
    assert shown == {"emails": (3, 1), "idle": (0, 0)}


def test_a_queues_settings_are_changed_by_the_apis_rules(admin_client, owner):
    user, _ = owner
    queue = make_queue(user, "emails", rate_per_second=5)
    JobQueue.objects.filter(pk=queue.pk).update(tokens=0.5, tokens_at=timezone.now())  # a bucket nearly empty
    page = reverse("admin:jobs_jobqueue_change", args=[queue.pk])

    refused = admin_client.post(page, {"parallelism": "0", "rate_per_second": "-1", "paused": ""})
    assert refused.status_code == 200  # the form again, with its errors
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"parallelism", "rate_per_second"}
    assert "Must be above 0" in str(errors["rate_per_second"])

    saved = admin_client.post(page, {"parallelism": "3", "rate_per_second": "10", "paused": "on"})
    assert saved.status_code == 302
    queue.refresh_from_db()
    assert (queue.parallelism, queue.rate_per_second, queue.paused) == (3, 10, True)
    assert queue.tokens_at is None  # a changed rate starts with a full bucket, as through the API


def test_queue_actions_pause_resume_purge_and_remove_only_empty_queues(admin_client, owner):
    user, _ = owner
    busy, empty = make_queue(user, "busy"), make_queue(user, "empty")
    waiting = make_job(user, "https://example.org/hook", queue="busy")
    changelist = reverse("admin:jobs_jobqueue_changelist")

    def act(action, *queues):
        return admin_client.post(
            changelist, {"action": action, "_selected_action": [queue.pk for queue in queues]}, follow=True
        )

    act("pause", busy, empty)
    assert set(JobQueue.objects.values_list("paused", flat=True)) == {True}
    act("resume", busy)
    assert JobQueue.objects.get(pk=busy.pk).paused is False

    refused = act("remove", busy, empty)
    assert "still holds 1 scheduled or running job" in refused.content.decode()
    assert list(JobQueue.objects.values_list("name", flat=True)) == ["busy"]

    act("purge", busy)
    assert Job.objects.get(pk=waiting.pk).state == JobState.CANCELLED
    act("remove", busy)
    assert not JobQueue.objects.exists()
    assert Job.objects.get(pk=waiting.pk).queue is None  # its finished jobs keep no queue


def test_queues_are_not_added_or_deleted_by_hand_in_the_admin(admin_client, owner):
    user, _ = owner
    queue = make_queue(user, "emails")
    assert admin_client.get(reverse("admin:jobs_jobqueue_add")).status_code == 403
    assert admin_client.get(reverse("admin:jobs_jobqueue_delete", args=[queue.pk])).status_code == 403
