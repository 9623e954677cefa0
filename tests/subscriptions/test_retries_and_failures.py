"""A sender that fails: what is retried, what is recorded, and the requeue."""

import json
import time

import pytest
from werkzeug import Response

from subscriptions.models import SubscriptionSendFailure

from .factories import fresh, make_messages, make_messageset, make_subscription
from .helpers import assert_waits_for

pytestmark = pytest.mark.django_db


def _error(status: int, body: str = "", **headers) -> Response:
    return Response(body, status=status, headers=headers)


def test_a_sender_that_answers_500_then_201_is_retried_and_the_subscription_advanced_once(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    sender.answer_in_turn(_error(500, "try later"))

    fire(messageset.default_schedule)

    requests = sender.requests()
    assert len(requests) == 2
    assert requests[0].get_data() == requests[1].get_data()
    assert requests[0].headers["Idempotency-Key"] == requests[1].headers["Idempotency-Key"]
    assert fresh(subscription).next_sequence_number == 2
    assert not SubscriptionSendFailure.objects.exists()


@pytest.mark.parametrize("status", [429, 502, 503])
def test_429_and_5xx_are_retried(sender, fire, status):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    sender.answer_in_turn(_error(status), _error(status))

    fire(messageset.default_schedule)

    assert len(sender.requests()) == 3
    assert fresh(subscription).next_sequence_number == 2


def test_retry_after_is_honoured(sender, fire, settings):
    settings.SEND_RETRY_DELAYS = [0.01]
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    arrivals = []

    def handler(request):
        arrivals.append(time.monotonic())
        return _error(429, **{"Retry-After": "1"}) if len(arrivals) == 1 else _accepted()

    sender.answer(handler)

    fire(messageset.default_schedule)

    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 1.0  # waited as asked, not the 0.01 s of its own delays
    assert fresh(subscription).next_sequence_number == 2


def test_a_retry_after_longer_than_allowed_records_the_failure_at_once(sender, fire, settings):
    settings.SEND_RETRY_AFTER_MAX = 30
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    sender.answer_in_turn(_error(503, "down for maintenance", **{"Retry-After": "3600"}))

    fire(messageset.default_schedule)

    assert len(sender.requests()) == 1
    failure = SubscriptionSendFailure.objects.get()
    assert "HTTP 503" in failure.reason
    assert "3600" in failure.reason
    assert fresh(subscription).next_sequence_number == 1


def test_after_the_last_retry_the_failure_records_why(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    sender.answer(lambda request: _error(500, "database is down"))

    fire(messageset.default_schedule)

    assert len(sender.requests()) == 3  # the request and its two retries
    failure = SubscriptionSendFailure.objects.get()
    assert failure.subscription_id == subscription.pk
    assert failure.sequence_number == 1
    assert failure.reason == "The message sender answered HTTP 500: database is down (after 3 attempts)"
    assert_waits_for(subscription, 1)


def test_a_4xx_fails_at_once_with_the_response_recorded(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    sender.answer(lambda request: _error(400, json.dumps({"to_addr": ["This field is required."]})))

    fire(messageset.default_schedule)

    assert len(sender.requests()) == 1
    failure = SubscriptionSendFailure.objects.get()
    assert failure.reason == 'The message sender answered HTTP 400: {"to_addr": ["This field is required."]}'
    assert fresh(subscription).next_sequence_number == 1


def test_a_sender_that_cannot_be_reached_is_retried_then_recorded(fire, settings, unused_port):
    settings.MESSAGE_SENDER_URL = f"http://127.0.0.1:{unused_port}"
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)

    fire(messageset.default_schedule)

    failure = SubscriptionSendFailure.objects.get()
    assert failure.reason.startswith("The message sender: OutboundConnectionError")
    assert "(after 3 attempts)" in failure.reason
    assert fresh(subscription).next_sequence_number == 1


def test_an_identity_store_failure_is_recorded_and_nothing_is_sent(identity_store, fire):
    messageset = make_messageset()
    make_messages(messageset, 3)
    make_subscription(messageset, identity="someone")
    identity_store.server.expect_request("/identities/someone/addresses/msisdn").respond_with_data("no", status=403)

    fire(messageset.default_schedule)

    assert identity_store.requests() == []
    assert SubscriptionSendFailure.objects.get().reason == "The identity store answered HTTP 403: no"


def test_requeue_resends_exactly_the_failed_ones(sender, fire, writer, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 3)
    failing = make_subscription(messageset, identity="failing")
    fine = make_subscription(messageset, identity="fine")
    sender.answer(lambda request: _error(500) if b'"failing"' in request.get_data() else _accepted())
    fire(messageset.default_schedule)
    assert fresh(fine).next_sequence_number == 2
    assert SubscriptionSendFailure.objects.get().subscription_id == failing.pk

    sender.answer(lambda request: _accepted())
    sender.server.clear_log()
    with run_queued():
        response = writer.post("/api/v1/failed-tasks/")

    assert response.status_code == 201
    assert response.json() == {"requeued_failed_tasks": True}
    assert [payload["to_identity"] for payload in sender.payloads()] == ["failing"]
    assert fresh(failing).next_sequence_number == 2
    assert fresh(fine).next_sequence_number == 2
    assert not SubscriptionSendFailure.objects.exists()


def test_requeue_skips_a_failure_whose_subscription_has_moved_on(sender, fire, run_queued):
    from subscriptions import tasks

    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    sender.answer(lambda request: _error(500))
    fire(messageset.default_schedule)
    failure = SubscriptionSendFailure.objects.get()
    SubscriptionSendFailure.objects.filter(pk=failure.pk).update(sequence_number=0)
    sender.answer(lambda request: _accepted())
    sender.server.clear_log()

    with run_queued():
        tasks.requeue_failed_tasks.delay()

    assert sender.requests() == []
    assert fresh(subscription).next_sequence_number == 1
    assert not SubscriptionSendFailure.objects.exists()


def test_a_failure_that_fails_again_is_recorded_again(sender, fire, run_queued):
    from subscriptions import tasks

    messageset = make_messageset()
    make_messages(messageset, 3)
    make_subscription(messageset)
    sender.answer(lambda request: _error(500, "still down"))
    fire(messageset.default_schedule)
    first = SubscriptionSendFailure.objects.get()

    with run_queued():
        tasks.requeue_failed_tasks.delay()

    again = SubscriptionSendFailure.objects.get()
    assert again.pk != first.pk
    assert again.reason.startswith("The message sender answered HTTP 500: still down")


def test_failed_tasks_are_listed_newest_first_with_the_reference_fields(sender, fire, reader):
    fire_refused_sends(sender, fire, count=3)

    response = reader.get("/api/v1/failed-tasks/")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["id"] for item in results] == sorted((item["id"] for item in results), reverse=True)
    item = results[0]
    assert set(item) == {"url", "id", "subscription", "subscription_id", "task_id", "initiated_at", "reason"}
    assert item["subscription"] == f"http://testserver/api/v1/subscriptions/{item['subscription_id']}/"
    assert item["url"] == f"http://testserver/api/v1/failed-tasks/{item['id']}/"
    assert reader.get(item["url"]).json() == item


def test_the_failed_tasks_list_costs_the_same_queries_however_many(sender, fire, reader, django_assert_num_queries):
    fire_refused_sends(sender, fire, count=4)
    reader.get("/api/v1/failed-tasks/")
    with django_assert_num_queries(2):
        assert len(reader.get("/api/v1/failed-tasks/").json()["results"]) == 4


def _accepted() -> Response:
    return Response(json.dumps({"id": "5f5cd2e6-2d10-4f0b-8b5a-8a5c0c7b3b9e"}), status=201)


def fire_refused_sends(sender, fire, *, count: int) -> None:
    """Fire a schedule to `count` subscriptions, each send refused with a 400 (a failed task each)."""
    messageset = make_messageset()
    make_messages(messageset, 3)
    for number in range(count):
        make_subscription(messageset, identity=f"id-{number}")
    sender.answer(lambda request: _error(400, "bad"))
    fire(messageset.default_schedule)
