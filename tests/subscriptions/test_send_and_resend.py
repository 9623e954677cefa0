"""`POST subscriptions/{id}/send` and `POST subscriptions/{id}/resend`."""

import uuid

import pytest
from werkzeug import Response

from subscriptions.models import ResendRequest

from .factories import fresh, make_messages, make_messageset, make_subscription

pytestmark = pytest.mark.django_db


def test_send_sends_the_next_message_now(sender, writer, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset, next_sequence_number=2)

    with run_queued():
        response = writer.post(f"/api/v1/subscriptions/{subscription.pk}/send", format="json")

    assert response.status_code == 202
    assert response.json() == {"accepted": True}
    assert [payload["content"] for payload in sender.payloads()] == ["Message 2 in eng"]
    assert sender.requests()[0].headers["Idempotency-Key"] == f"{subscription.pk}:2"
    assert fresh(subscription).next_sequence_number == 3


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"completed": True}, "Subscription has completed"),
        ({"active": False}, "Subscription is not active"),
        ({"process_status": 1}, "Subscription is not ready: process_status 1 (In process (legacy))"),
        ({"next_sequence_number": 9}, "Missing message: MessageSet: <baby>, Sequence Number: <9>, Lang: <eng>"),
    ],
)
def test_send_refuses_a_subscription_that_cannot_be_sent_saying_why(sender, writer, run_queued, fields, reason):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset, **fields)

    with run_queued():
        response = writer.post(f"/api/v1/subscriptions/{subscription.pk}/send/", format="json")

    assert response.status_code == 400
    assert response.json() == {"accepted": False, "reason": reason}
    assert sender.requests() == []


def test_send_to_an_unknown_subscription_is_a_400(writer):
    unknown = uuid.uuid4()
    response = writer.post(f"/api/v1/subscriptions/{unknown}/send", format="json")
    assert response.status_code == 400
    assert response.json() == {"accepted": False, "reason": f"Cannot find subscription with ID {unknown}"}


def test_resend_sends_the_previous_message_again_without_advancing(sender, writer, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset, next_sequence_number=3)
    sender.answer(
        lambda request: Response(
            '{"id": "0b8f1a5e-7a3c-4bd5-9d29-8a8a3d1c5e11"}', status=201, content_type="application/json"
        )
    )

    with run_queued():
        response = writer.post(f"/api/v1/subscriptions/{subscription.pk}/resend", format="json")

    assert response.status_code == 202
    assert response.json() == {"accepted": True}
    (payload,) = sender.payloads()
    assert payload["resend"] == "true"
    assert payload["content"] == "Message 2 in eng"
    assert sender.requests()[0].headers["Idempotency-Key"].startswith(f"{subscription.pk}:2:resend:")
    assert fresh(subscription).next_sequence_number == 3
    resend_request = ResendRequest.objects.get()
    assert resend_request.subscription_id == subscription.pk
    assert resend_request.message.sequence_number == 2
    assert str(resend_request.outbound) == "0b8f1a5e-7a3c-4bd5-9d29-8a8a3d1c5e11"


def test_resend_of_a_subscription_at_its_first_message_sends_the_first(sender, writer, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)

    with run_queued():
        writer.post(f"/api/v1/subscriptions/{subscription.pk}/resend/", format="json")

    assert [payload["content"] for payload in sender.payloads()] == ["Message 1 in eng"]
    assert fresh(subscription).next_sequence_number == 1


def test_resend_of_an_unknown_subscription_is_the_reference_400(writer):
    unknown = uuid.uuid4()
    response = writer.post(f"/api/v1/subscriptions/{unknown}/resend", format="json")
    assert response.status_code == 400
    assert response.json() == {"accepted": False, "reason": f"Cannot find subscription with ID {unknown}"}
    assert not ResendRequest.objects.exists()


def test_resend_and_send_need_a_write_token(reader):
    subscription = make_subscription(make_messageset())
    assert reader.post(f"/api/v1/subscriptions/{subscription.pk}/resend").status_code == 403
    assert reader.post(f"/api/v1/subscriptions/{subscription.pk}/send").status_code == 403


def test_send_next_now_does_not_make_the_periods_schedule_send_send_again(sender, writer, fire, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 5)
    subscription = make_subscription(messageset)
    fire(messageset.default_schedule)
    with run_queued():
        writer.post(f"/api/v1/subscriptions/{subscription.pk}/send", format="json")

    fire(messageset.default_schedule)

    assert [payload["content"] for payload in sender.payloads()] == ["Message 1 in eng", "Message 2 in eng"]
    assert fresh(subscription).next_sequence_number == 3
