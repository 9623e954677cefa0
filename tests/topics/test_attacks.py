"""Topics under attack: hostile names and numbers, revoked tokens still listening, and
budgets that every publish and subscribe of a user's tokens share."""

import pytest

from cache_api.models import NAME_RULE
from tests.topics.conftest import HTTP, poll, publish
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
