"""The client in the field, `seed-services-client`, against a live server: its subscription calls.

Its `seed_client` fixture (tests/conftest.py) sets the client up.
"""

import pytest

from subscriptions.models import ResendRequest, Subscription

from .factories import make_messageset, make_subscription

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_client_creates_reads_and_updates_subscriptions(seed_client):
    messageset = make_messageset()
    created = seed_client.create_subscription(
        {"identity": "mother", "messageset": messageset.pk, "lang": "eng", "schedule": messageset.default_schedule_id}
    )
    assert created["identity"] == "mother"
    assert seed_client.get_subscription(created["id"])["messageset"] == messageset.pk

    updated = seed_client.update_subscription(created["id"], {"next_sequence_number": 3})
    assert updated["next_sequence_number"] == 3
    assert Subscription.objects.get(pk=created["id"]).next_sequence_number == 3


def test_the_client_lists_subscriptions_across_pages_with_filters(seed_client):
    messageset = make_messageset()
    made = [make_subscription(messageset, identity=f"id-{number}") for number in range(5)]
    make_subscription(messageset, identity="inactive", active=False)

    listed = list(seed_client.get_subscriptions({"active": "True"})["results"])

    assert [item["identity"] for item in listed] == [subscription.identity for subscription in reversed(made)]


def test_the_client_resends_and_reads_failed_tasks(seed_client, eager_celery):
    subscription = make_subscription(make_messageset())

    assert seed_client.resend_subscription(subscription.pk) == {"accepted": True}
    assert ResendRequest.objects.filter(subscription=subscription).exists()
    assert list(seed_client.get_failed_tasks()["results"]) == []
    assert seed_client.requeue_failed_tasks() == {"requeued_failed_tasks": True}
