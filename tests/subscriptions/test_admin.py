import pytest
from werkzeug import Response

from subscriptions.models import ResendRequest, SubscriptionSendFailure

from .factories import fresh, make_messages, make_messageset, make_schedule, make_subscription

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/subscriptions/subscription/"


def test_subscriptions_are_searchable_by_identity_and_filterable(staff_client):
    messageset = make_messageset()
    other_schedule = make_schedule(hour="9")
    make_subscription(messageset, identity="find-me")
    make_subscription(messageset, identity="someone-else", schedule=other_schedule, process_status=-1)

    found = staff_client.get(CHANGELIST, {"q": "find-me"})
    assert found.status_code == 200
    assert b"find-me" in found.content and b"someone-else" not in found.content

    by_schedule = staff_client.get(CHANGELIST, {"schedule__id__exact": other_schedule.pk})
    assert b"someone-else" in by_schedule.content and b"find-me" not in by_schedule.content
    by_status = staff_client.get(CHANGELIST, {"process_status__exact": -1})
    assert b"someone-else" in by_status.content and b"find-me" not in by_status.content
    by_set = staff_client.get(CHANGELIST, {"messageset__id__exact": messageset.pk})
    assert b"find-me" in by_set.content


def test_the_send_next_now_action_sends_and_advances(staff_client, sender, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    with run_queued():
        response = staff_client.post(
            CHANGELIST, {"action": "send_next_now", "_selected_action": [str(subscription.pk)]}, follow=True
        )
    assert response.status_code == 200
    assert [payload["content"] for payload in sender.payloads()] == ["Message 1 in eng"]
    assert fresh(subscription).next_sequence_number == 2


def test_the_resend_action_resends_the_current_message(staff_client, sender, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset, next_sequence_number=2)
    with run_queued():
        staff_client.post(CHANGELIST, {"action": "resend", "_selected_action": [str(subscription.pk)]})
    assert [payload["resend"] for payload in sender.payloads()] == ["true"]
    assert ResendRequest.objects.filter(subscription=subscription).exists()
    assert fresh(subscription).next_sequence_number == 2


def test_the_deactivate_action_deactivates(staff_client):
    subscription = make_subscription(make_messageset())
    staff_client.post(CHANGELIST, {"action": "deactivate", "_selected_action": [str(subscription.pk)]})
    assert fresh(subscription).active is False


def test_failures_are_listed_and_requeued_from_the_admin(staff_client, sender, fire, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    sender.answer(lambda request: Response("no", status=400))
    fire(messageset.default_schedule)

    listing = staff_client.get("/admin/subscriptions/subscriptionsendfailure/")
    assert listing.status_code == 200
    assert b"The message sender answered HTTP 400" in listing.content

    sender.answer(lambda request: Response('{"id": null}', status=201))
    with run_queued():
        staff_client.post("/admin/subscriptions/subscriptionsendfailure/requeue-all/")
    assert fresh(subscription).next_sequence_number == 2
    assert not SubscriptionSendFailure.objects.exists()
