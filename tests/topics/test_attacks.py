"""Topics under attack: hostile names and numbers, revoked tokens still listening, and
budgets that every publish and subscribe of a user's tokens share."""

import threading

import pytest

from accounts.models import ApiToken
from accounts.services import token_revoke
from cache_api.models import NAME_RULE
from harness.waiting import wait_until
from tests.topics.conftest import HTTP, EventStream, poll, publish, waiting_subscribers
from topics.asgi import TOPIC_RULE

pytestmark = pytest.mark.django_db(transaction=True)


# --- Names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("chat/alerts%0A", TOPIC_RULE),
        ("chat/alerts%0D%0AINFO%20forged", TOPIC_RULE),
        ("chat/al%00erts", TOPIC_RULE),
        ("chat/%E2%80%A8alerts", TOPIC_RULE),
        ("chat/" + "a" * 129, TOPIC_RULE),
        ("ch%00at/alerts", NAME_RULE),
        ("chat%0A/alerts", NAME_RULE),
        ("ch%C3%A4t/alerts", NAME_RULE),
    ],
)
def test_a_name_outside_its_rule_is_a_400_on_every_method_before_the_token(live, chat, token, path, rule):
    raw = token()
    for method in ("GET", "POST", "OPTIONS", "DELETE"):
        for headers in ({"Authorization": raw, "Content-Type": "text/plain"}, {}):
            response = HTTP.request(method, f"{live.url}/topics/{path}", content=b"x", headers=headers)
            assert (method, response.status_code, response.json()) == (method, 400, {"message": rule})


def test_a_topic_with_a_trailing_newline_is_not_another_topic(live, chat, token, settings):
    settings.TOPICS_LONG_POLL_SECONDS = 1
    raw = token()
    assert publish(live.url, raw, "x", topic="alerts%0A").status_code == 400
    assert poll(live.url, raw, topic="alerts", sequence_number=1).json() == {"items": []}


# --- Numbers ----------------------------------------------------------------------------------


NOT_ASCII_WHOLE_NUMBERS = ["\u00b2", "\u0661\u0662", "\uff11", "1_0", " 1", "+1", "-1", "99999999999999999999999"]


@pytest.mark.parametrize("name", ["sequence_number", "sequence_page"])
@pytest.mark.parametrize("value", NOT_ASCII_WHOLE_NUMBERS)
def test_a_position_of_anything_but_ascii_digits_is_a_400_naming_it(live, chat, token, name, value):
    response = poll(live.url, token(), **{name: value})
    assert response.status_code == 400
    assert response.json() == {"message": f"{name} must be a whole number of 0 or more, not {value!r}."}


BAD_EVENT_IDS = ["\u0661:\u0662", "1:\u00b2", "1:99999999999999999999999", "1:9223372036854775807"]


@pytest.mark.parametrize("event_id", BAD_EVENT_IDS)
def test_a_last_event_id_of_anything_but_ascii_digits_is_a_400(live, chat, token, event_id):
    response = poll(live.url, token(), last_event_id=event_id)
    assert response.status_code == 400
    assert response.json()["message"].startswith("Last-Event-ID must be")


# --- Revoked tokens ------------------------------------------------------------------------------


@pytest.fixture
def fresh_checks(settings):
    """Every token check is made again (TOKEN_CACHE_SECONDS 0): a revocation is seen at once."""
    settings.TOKEN_CACHE_SECONDS = 0


def test_a_revoked_tokens_event_stream_ends_before_the_next_message(live, chat, make_token, fresh_checks):
    listener, raw = make_token()
    _, publisher = make_token()
    events = EventStream(f"{live.url}/topics/chat/room?token={raw}")
    assert events.wait_for_comment("connected")
    token_revoke(token=listener)
    assert publish(live.url, publisher, "after the revocation").status_code == 204
    assert events.ended.wait(10)
    assert events.events == [{"event": "end", "data": '{"reason": "Token has been revoked."}'}]


def test_an_event_stream_ends_once_its_token_no_longer_covers_the_topic(live, chat, make_token, fresh_checks):
    listener, raw = make_token()
    _, publisher = make_token()
    events = EventStream(f"{live.url}/topics/chat/room?token={raw}")
    assert events.wait_for_comment("connected")
    ApiToken.objects.filter(pk=listener.pk).update(scopes=["topics:subscribeonly:chat:topic=lobby"])
    assert publish(live.url, publisher, "not for you").status_code == 204
    assert events.ended.wait(10)
    [end] = events.events
    assert end["event"] == "end" and "needs a topics scope" in end["data"]


def test_a_long_poll_opened_before_revocation_gets_nothing_after_it(live, chat, make_token, fresh_checks):
    listener, raw = make_token()
    _, publisher = make_token()
    answers, before = [], waiting_subscribers()
    waiting = threading.Thread(target=lambda: answers.append(poll(live.url, raw)))
    waiting.start()
    wait_until(lambda: waiting_subscribers() == before + 1, what="the long poll to wait", timeout=10)
    token_revoke(token=listener)
    assert publish(live.url, publisher, "after the revocation").status_code == 204
    waiting.join(30)
    [answer] = answers
    assert (answer.status_code, answer.json()) == (401, {"message": "Token has been revoked."})


# --- Rate limits ----------------------------------------------------------------------------------


def test_long_polls_count_against_the_rate_limit(live, chat, token, settings):
    settings.CACHE_RATE_LIMIT_REQUESTS = 5
    raw = token()
    assert publish(live.url, raw, "x").status_code == 204
    statuses = [poll(live.url, raw, sequence_number=1).status_code for _ in range(12)]
    assert 429 in statuses, statuses
    refused = next(r for r in (poll(live.url, raw, sequence_number=1) for _ in range(8)) if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["message"].startswith("Too many requests: a user's tokens may make 5 requests per second")


def test_opening_event_streams_counts_against_the_rate_limit(live, chat, token, settings):
    settings.CACHE_RATE_LIMIT_REQUESTS = 3
    raw = token()
    statuses = []
    for _ in range(8):
        with HTTP.stream(
            "GET", f"{live.url}/topics/chat/room?token={raw}", headers={"Accept": "text/event-stream"}
        ) as r:
            statuses.append(r.status_code)
    assert 429 in statuses, statuses


def test_a_users_tokens_share_one_budget_for_publish_and_subscribe(live, chat, make_token, settings):
    settings.CACHE_RATE_LIMIT_REQUESTS = 3
    first, raw = make_token()
    others = [make_token(user=first.user)[1] for _ in range(3)]
    assert publish(live.url, raw, "x").status_code == 204
    # Each token stays within 3 a second on its own; together they do not.
    statuses = [poll(live.url, each, sequence_number=1).status_code for _ in range(2) for each in [raw, *others]]
    assert 429 in statuses, statuses
