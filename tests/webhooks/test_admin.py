"""The admin: webhooks per cache with their failures, a webhook's recent deliveries, removal."""

import pytest
from django.urls import reverse

from jobs.models import Job
from webhooks.models import TopicWebhook

from .conftest import URL, publish


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def failing_webhook(api, owner, news, receiver, relay_and_send, settings) -> TopicWebhook:
    """A webhook whose only delivery was dead-lettered (a 500, no retries)."""
    settings.JOBS_RETRY_SCHEDULE = []
    receiver.expect_request("/hook").respond_with_data("broken", status=500)
    body = {"topic": "sports", "destination": receiver.url_for("/hook")}
    assert api(owner.raw).put(URL + "scores", body, format="json").status_code == 201
    publish(news, "sports", b"one")
    relay_and_send()
    return TopicWebhook.objects.get()


def test_the_list_counts_each_webhooks_failed_deliveries(admin_client, failing_webhook):
    response = admin_client.get(reverse("admin:webhooks_topicwebhook_changelist"))
    assert response.status_code == 200
    [shown] = response.context["cl"].result_list
    assert shown.failures == 1


def test_a_webhook_page_shows_its_recent_deliveries_linked_to_their_jobs(admin_client, failing_webhook):
    response = admin_client.get(reverse("admin:webhooks_topicwebhook_change", args=[failing_webhook.pk]))
    assert response.status_code == 200
    job = Job.objects.get()
    assert reverse("admin:jobs_job_change", args=[job.pk]).encode() in response.content
    assert b"failed" in response.content


def test_removing_a_webhook_in_the_admin_removes_its_deliveries(admin_client, failing_webhook):
    url = reverse("admin:webhooks_topicwebhook_delete", args=[failing_webhook.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not TopicWebhook.objects.exists()
    assert not Job.objects.exists()


def test_the_deliveries_list_reads_a_fixed_number_of_queries(
    api, owner, news, receiver, relay_and_send, django_assert_num_queries
):
    receiver.expect_request("/hook").respond_with_data("ok")
    body = {"topic": "sports", "destination": receiver.url_for("/hook")}
    api(owner.raw).put(URL + "scores", body, format="json")
    for text in (b"one", b"two", b"three"):
        publish(news, "sports", text)
    while relay_and_send():
        pass
    client = api(owner.raw)
    client.get(URL + "scores/deliveries")  # warms what is looked up once
    with django_assert_num_queries(5):
        answer = client.get(URL + "scores/deliveries")
    assert len(answer.json()) == 3
