"""Deliveries: every message POSTed, signed with the webhook's secret, in order, retried on the
jobs engine's schedule, dead-lettered after its last retry; gaps skipped over and counted."""

import base64
import json

import pytest

from cache_api.keys import topic_key
from core.redis import get_data_redis
from jobs.models import Job, JobState
from webhooks.models import TopicWebhook

from .conftest import URL, publish, received, verifies


@pytest.fixture
def make_webhook(api, owner, news, receiver):
    """make_webhook(name="scores") -> the secret the API returned for a webhook of topic `sports`."""

    def make(name: str = "scores", path: str = "/hook") -> str:
        body = {"topic": "sports", "destination": receiver.url_for(path)}
        answer = api(owner.raw).put(URL + name, body, format="json")
        assert answer.status_code == 201, answer.content
        return answer.json()["secret"]

    return make


def test_a_published_message_is_posted_signed_with_the_webhooks_secret(make_webhook, receiver, news, relay_and_send):
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    secret = make_webhook()
    page, seq = publish(news, "sports", b"goal!")
    publish(news, "weather", b"rain")  # another topic: not delivered

    assert relay_and_send() == 1
    [request] = received(receiver)
    assert verifies(secret, request)
    body = json.loads(request.get_data())
    assert body == {
        "cache": "news",
        "topic": "sports",
        "topic_sequence_number": seq,
        "sequence_page": page,
        "publish_timestamp": body["publish_timestamp"],
        "text": "goal!",
    }
    assert body["publish_timestamp"] > 1_700_000_000_000  # ms
    assert request.headers["Content-Type"] == "application/json"


def test_another_secret_does_not_verify(make_webhook, receiver, news, relay_and_send):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_webhook()
    other = make_webhook("other", path="/other")
    publish(news, "sports", b"goal!")
    relay_and_send()
    assert not verifies(other, received(receiver)[0])


def test_binary_messages_are_sent_as_base64(make_webhook, receiver, news, relay_and_send):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_webhook()
    publish(news, "sports", b"\x00\xff", binary=True)
    relay_and_send()
    body = json.loads(received(receiver)[0].get_data())
    assert base64.b64decode(body["binary"]) == b"\x00\xff" and "text" not in body


def test_only_messages_published_after_the_webhook_was_set_are_delivered(make_webhook, receiver, news, relay_and_send):
    receiver.expect_request("/hook").respond_with_data("ok")
    publish(news, "sports", b"before")
    make_webhook()
    publish(news, "sports", b"after")
    relay_and_send()
    assert [json.loads(r.get_data())["text"] for r in received(receiver)] == ["after"]


def test_messages_arrive_in_order_and_wait_for_a_failing_one_to_be_retried(
    make_webhook, receiver, news, relay_and_send, clock, api, owner
):
    receiver.expect_oneshot_request("/hook").respond_with_data("down", status=503)
    receiver.expect_request("/hook").respond_with_data("ok")
    secret = make_webhook()
    for text in (b"one", b"two", b"three"):
        publish(news, "sports", text)

    relay_and_send()  # "one" fails
    relay_and_send()  # nothing else is sent while "one" waits for its retry
    assert len(received(receiver)) == 1

    clock.advance(seconds=10)  # the first retry of JOBS_RETRY_SCHEDULE
    while relay_and_send():
        pass
    texts = [json.loads(r.get_data())["text"] for r in received(receiver)]
    assert texts == ["one", "one", "two", "three"]
    assert all(verifies(secret, request) for request in received(receiver))
    first, retried = received(receiver)[:2]
    assert first.headers["webhook-id"] == retried.headers["webhook-id"]  # a receiver can drop duplicates

    deliveries = api(owner.raw).get(URL + "scores/deliveries").json()
    assert [d["topic_sequence_number"] for d in deliveries] == [3, 2, 1]
    assert [a["outcome"] for a in deliveries[-1]["attempts"]] == ["failed", "succeeded"]
    assert deliveries[-1]["attempts"][0]["status_code"] == 503
    assert {d["state"] for d in deliveries} == {"succeeded"}


def test_a_dead_lettered_message_is_passed_over_for_the_next(
    make_webhook, receiver, news, relay_and_send, clock, settings, api, owner
):
    settings.JOBS_RETRY_SCHEDULE = [10]
    receiver.expect_oneshot_request("/hook").respond_with_data("no", status=500)
    receiver.expect_oneshot_request("/hook").respond_with_data("no", status=500)
    receiver.expect_request("/hook").respond_with_data("ok")
    make_webhook()
    publish(news, "sports", b"one")
    publish(news, "sports", b"two")

    relay_and_send()
    clock.advance(seconds=10)
    relay_and_send()  # the last retry fails: dead-lettered
    relay_and_send()
    texts = [json.loads(r.get_data())["text"] for r in received(receiver)]
    assert texts == ["one", "one", "two"]

    failed = api(owner.raw).get(URL + "scores/deliveries?state=failed").json()
    assert [d["topic_sequence_number"] for d in failed] == [1]
    assert len(failed[0]["attempts"]) == 2


def test_a_refused_destination_is_dead_lettered_without_retries(api, owner, news, receiver, relay_and_send, settings):
    body = {"topic": "sports", "destination": receiver.url_for("/hook").replace("127.0.0.1", "localhost")}
    assert api(owner.raw).put(URL + "scores", body, format="json").status_code == 201
    settings.OUTBOUND_ALLOWED_NETWORKS = []  # the name resolves to loopback: refused at send time
    publish(news, "sports", b"one")
    relay_and_send()
    assert received(receiver) == []
    [job] = Job.objects.all()
    assert job.state == JobState.FAILED
    assert job.attempts.get().outcome == "refused"


def test_rotation_signs_with_both_secrets_during_the_overlap(make_webhook, receiver, news, relay_and_send, api, owner):
    receiver.expect_request("/hook").respond_with_data("ok")
    old = make_webhook()
    new = api(owner.raw).post(URL + "scores/rotate-secret", {"overlap": 3600}, format="json").json()["secret"]
    publish(news, "sports", b"one")
    relay_and_send()
    [request] = received(receiver)
    assert verifies(old, request) and verifies(new, request)
    assert len(request.headers["webhook-signature"].split(" ")) == 2


def test_rotation_without_overlap_stops_the_old_secret(make_webhook, receiver, news, relay_and_send, api, owner):
    receiver.expect_request("/hook").respond_with_data("ok")
    old = make_webhook()
    new = api(owner.raw).post(URL + "scores/rotate-secret", {"overlap": 0}, format="json").json()["secret"]
    publish(news, "sports", b"one")
    relay_and_send()
    [request] = received(receiver)
    assert verifies(new, request) and not verifies(old, request)


def test_expired_messages_are_skipped_over_and_counted(make_webhook, receiver, news, relay_and_send):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_webhook()
    for text in (b"one", b"two", b"three"):
        publish(news, "sports", text)
    get_data_redis().xtrim(topic_key(news.pk, "sports"), minid="3-0", approximate=False)  # as if 1 and 2 had expired

    relay_and_send()
    assert [json.loads(r.get_data())["text"] for r in received(receiver)] == ["three"]
    webhook = TopicWebhook.objects.get()
    assert (webhook.discontinuities, webhook.skipped, webhook.last_seq) == (1, 2, 3)


def test_a_new_page_is_followed(make_webhook, receiver, news, relay_and_send):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_webhook()
    first_page, _ = publish(news, "sports", b"one")
    relay_and_send()
    # The topic expired and its numbering restarted a second later: a new page from 1.
    client = get_data_redis()
    client.delete(topic_key(news.pk, "sports"))
    client.hset(topic_key(news.pk, "sports") + b":meta", mapping={"page": first_page + 1, "seq": 0})
    publish(news, "sports", b"again")
    relay_and_send()
    bodies = [json.loads(r.get_data()) for r in received(receiver)]
    assert [(b["text"], b["topic_sequence_number"], b["sequence_page"]) for b in bodies] == [
        ("one", 1, first_page),
        ("again", 1, first_page + 1),
    ]
    assert TopicWebhook.objects.get().discontinuities == 1


def test_removing_a_webhook_drops_its_unsent_deliveries(make_webhook, receiver, news, api, owner, relay_and_send):
    from webhooks.relay import relay_once

    make_webhook()
    publish(news, "sports", b"one")
    relay_once()
    assert Job.objects.count() == 1
    assert api(owner.raw).delete(URL + "scores").status_code == 204
    assert Job.objects.count() == 0
    assert relay_and_send() == 0
