"""The messaging store's events (MESSAGING_EVENTS_TOPIC), as a topic's subscribers receive them."""

import json

import pytest
from werkzeug import Request, Response

from cache_api import services as cache_services
from core.redis import get_data_redis
from harness.waiting import wait_until
from subscriptions import events, services
from subscriptions.metrics import METRICS_KEY
from subscriptions.models import SubscriptionSendFailure
from tests.topics.conftest import LiveServer, poll

from .conftest import accepted
from .factories import fresh, make_messages, make_messageset, make_schedule, make_subscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def live():
    with LiveServer() as server:
        yield server


@pytest.fixture
def events_topic(settings):
    """Events go to chat/events; the cache exists."""
    settings.MESSAGING_EVENTS_TOPIC = "chat/events"
    cache, _ = cache_services.cache_create(name="chat")
    return cache


def published(cache) -> list[dict]:
    """The events on the topic, read from its stream."""
    entries = get_data_redis().xrange(events.TopicRef(cache.pk, cache.name, "events").key)
    return [json.loads(fields[b"v"]) for _, fields in entries]


def lost(reason: str) -> float:
    value = get_data_redis().hget(METRICS_KEY, f'sbm_events_lost{{"reason":"{reason}"}}')
    return float(value or 0)


def test_a_long_poll_subscriber_sees_a_schedule_sends_events(
    live, events_topic, make_token, sender, writer, celery_worker
):
    def refuse_mother_2(request: Request) -> Response:
        if json.loads(request.get_data())["to_identity"] == "mother-2":
            return Response("no such number", status=400)
        return accepted(request)

    sender.answer(refuse_mother_2)
    schedule = make_schedule(minute="0", hour="8", day_of_week="1")
    follow_on = make_messageset("follow-on", schedule=schedule)
    messageset = make_messageset("weekly", schedule=schedule, next_set=follow_on)
    make_messages(messageset, 2)
    finishing = make_subscription(messageset, schedule=schedule, identity="mother-1", next_sequence_number=2)
    refused = make_subscription(messageset, schedule=schedule, identity="mother-2")
    raw = make_token()[1]
    received, cursor = [], {"sequence_number": 1, "sequence_page": 0}

    def receive() -> list[str]:
        items = poll(live.url, raw, topic="events", **cursor).json()["items"]
        for item in items:
            message = item["item"]
            received.append(json.loads(message["value"]["text"]))
            cursor.update(sequence_number=message["topic_sequence_number"] + 1, sequence_page=message["sequence_page"])
        return [event["type"] for event in received]

    assert writer.post(f"/api/v1/schedule/{schedule.pk}/send/").status_code == 202
    wait_until(lambda: len(receive()) >= 7, what="the send's events to reach the subscriber", timeout=30)

    assert [event["type"] for event in received] == [
        events.SUBSCRIPTION_CREATED,
        events.SUBSCRIPTION_CREATED,
        events.MESSAGE_SENT,
        events.SUBSCRIPTION_COMPLETED,
        events.SUBSCRIPTION_MOVED,
        events.SUBSCRIPTION_CREATED,
        events.MESSAGE_FAILED,
    ]
    assert all(event["specversion"] == "1.0" and event["source"] == "/api/v1/subscriptions" for event in received)
    assert len({event["id"] for event in received}) == 7
    sent, _, moved, follower, failed = received[2:]
    assert sent["data"] == {
        "subscription": str(finishing.pk),
        "identity": "mother-1",
        "messageset": messageset.pk,
        "lang": "eng",
        "sequence_number": 2,
        "outcome": "sent",
        "sender_status": 201,
        "outbound": sent["data"]["outbound"],
    }
    assert moved["data"]["to_messageset"] == follow_on.pk
    assert follower["data"]["via"] == "next_set"
    assert follower["data"]["subscription"] == moved["data"]["next_subscription"]
    assert failed["subject"] == str(refused.pk)
    assert failed["data"]["kind"] == "http_4xx"
    assert "no such number" in failed["data"]["reason"]
    assert fresh(finishing).completed


def test_a_message_sent_event_has_the_same_id_however_often_it_is_built(events_topic, sender, run_queued):
    messageset = make_messageset("weekly")
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    with run_queued():
        services.subscription_send_queue(subscription=subscription)

    sent = [event for event in published(events_topic) if event["type"] == events.MESSAGE_SENT]
    delivery = services.sending.plan([subscription]).deliveries[0]
    again = events.message_sent(subscription, delivery, resend=False, at=fresh(subscription).updated_at)
    assert [event["id"] for event in sent] == [again["id"]]


def test_requeues_and_resends_are_published(events_topic, sender, run_queued):
    sender.answer_in_turn(Response("down", status=400))
    messageset = make_messageset("weekly")
    make_messages(messageset, 3)
    subscription = make_subscription(messageset, next_sequence_number=2)
    with run_queued():
        services.subscription_send_queue(subscription=subscription)
    failure = SubscriptionSendFailure.objects.get()
    services.subscription_failures_requeue(failure_ids=[failure.pk])
    with run_queued():
        services.resend_request_create(subscription=fresh(subscription))

    kinds = [event["type"] for event in published(events_topic)]
    assert kinds == [
        events.SUBSCRIPTION_CREATED,
        events.MESSAGE_FAILED,
        events.SEND_REQUEUED,
        events.MESSAGE_SENT,
        events.MESSAGE_RESENT,
    ]


def test_without_the_cache_events_are_counted_lost_and_the_send_goes_on(settings, sender, run_queued):
    settings.MESSAGING_EVENTS_TOPIC = "missing/events"
    messageset = make_messageset("weekly")
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    with run_queued():
        services.subscription_send_queue(subscription=subscription)

    assert fresh(subscription).next_sequence_number == 2
    assert lost("no_cache") == 2  # its creation and its message


def test_nothing_is_published_when_the_setting_is_unset(settings, sender, run_queued):
    settings.MESSAGING_EVENTS_TOPIC = None
    cache, _ = cache_services.cache_create(name="chat")
    messageset = make_messageset("weekly")
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    with run_queued():
        services.subscription_send_queue(subscription=subscription)

    assert fresh(subscription).next_sequence_number == 2
    assert published(cache) == []
