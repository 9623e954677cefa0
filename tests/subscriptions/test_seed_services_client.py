"""The client in the field, `seed-services-client`, against a live server: its subscription calls.

Its HTTP library (`demands`) still calls `inspect.getargspec`, which Python 3.11
removed; the client's own calls are unchanged.
"""

import inspect

import pytest

if not hasattr(inspect, "getargspec"):
    inspect.getargspec = inspect.getfullargspec

from seed_services_client import StageBasedMessagingApiClient

from subscriptions.models import ResendRequest, Subscription

from .factories import make_messageset, make_subscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, make_token, settings) -> StageBasedMessagingApiClient:
    settings.API_PAGE_SIZE = 2  # so that the list spans several pages
    _, raw = make_token("messaging:write")
    return StageBasedMessagingApiClient(raw, f"{live_server.url}/api/v1")


def test_the_client_creates_reads_and_updates_subscriptions(client):
    messageset = make_messageset()
    created = client.create_subscription(
        {"identity": "mother", "messageset": messageset.pk, "lang": "eng", "schedule": messageset.default_schedule_id}
    )
    assert created["identity"] == "mother"
    assert client.get_subscription(created["id"])["messageset"] == messageset.pk

    updated = client.update_subscription(created["id"], {"next_sequence_number": 3})
    assert updated["next_sequence_number"] == 3
    assert Subscription.objects.get(pk=created["id"]).next_sequence_number == 3


def test_the_client_lists_subscriptions_across_pages_with_filters(client):
    messageset = make_messageset()
    made = [make_subscription(messageset, identity=f"id-{number}") for number in range(5)]
    make_subscription(messageset, identity="inactive", active=False)

    listed = list(client.get_subscriptions({"active": "True"})["results"])

    assert [item["identity"] for item in listed] == [subscription.identity for subscription in reversed(made)]


def test_the_client_resends_and_reads_failed_tasks(client, eager_celery):
    subscription = make_subscription(make_messageset())

    assert client.resend_subscription(subscription.pk) == {"accepted": True}
    assert ResendRequest.objects.filter(subscription=subscription).exists()
    assert list(client.get_failed_tasks()["results"]) == []
    assert client.requeue_failed_tasks() == {"requeued_failed_tasks": True}
