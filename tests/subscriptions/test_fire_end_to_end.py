"""A schedule fire asked for through the API reaches the message sender through a real worker."""

import pytest

from harness.waiting import wait_until

from .factories import fresh, make_messages, make_messageset, make_schedule, make_subscription

pytestmark = pytest.mark.django_db(transaction=True)


def test_send_on_a_schedule_sends_each_ready_subscriber_its_next_message(sender, writer, celery_worker):
    schedule = make_schedule(minute="0", hour="8", day_of_week="1")
    messageset = make_messageset("weekly", schedule=schedule)
    make_messages(messageset, 3)
    first = make_subscription(messageset, schedule=schedule, identity="mother-1")
    second = make_subscription(messageset, schedule=schedule, identity="mother-2", next_sequence_number=2)
    elsewhere = make_subscription(messageset, schedule=make_schedule(minute="30"), identity="mother-3")

    response = writer.post(f"/api/v1/schedule/{schedule.pk}/send/")

    assert response.status_code == 202
    wait_until(lambda: len(sender.requests()) == 2, what="both messages to reach the sender", timeout=20)
    assert sorted(p["to_identity"] for p in sender.payloads()) == ["mother-1", "mother-2"]
    wait_until(lambda: fresh(second).next_sequence_number == 3, what="the second subscription to advance", timeout=20)
    assert fresh(first).next_sequence_number == 2
    assert fresh(elsewhere).next_sequence_number == 1
