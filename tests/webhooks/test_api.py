"""The webhooks API: set, list, read, remove, rotate; who may; what destinations are refused."""

import pytest

from .conftest import URL

BODY = {"topic": "sports", "destination": "https://example.org/hook"}


@pytest.fixture
def client(api, owner):
    return api(owner.raw)


def test_it_creates_a_webhook_and_shows_its_secret_once(client, news):
    answer = client.put(URL + "scores", BODY, format="json")
    assert answer.status_code == 201, answer.content
    created = answer.json()
    assert set(created) == {"name", "topic", "destination", "secret"}
    assert created["secret"].startswith("whsec_")
    assert created["destination"] == "https://example.org/hook"

    shown = client.get(URL + "scores").json()
    assert shown["topic"] == "sports" and "secret" not in shown
    assert [w["name"] for w in client.get(URL).json()] == ["scores"]


def test_it_replaces_a_webhook_keeping_its_secret(client, news):
    client.put(URL + "scores", BODY, format="json")
    answer = client.put(URL + "scores", {**BODY, "destination": "https://example.net/"}, format="json")
    assert answer.status_code == 200
    assert "secret" not in answer.json()
    assert client.get(URL + "scores").json()["destination"] == "https://example.net/"


def test_it_removes_a_webhook(client, news):
    client.put(URL + "scores", BODY, format="json")
    assert client.delete(URL + "scores").status_code == 204
    assert client.get(URL + "scores").status_code == 404
    assert client.get(URL).json() == []


def test_it_rotates_the_secret(client, news):
    first = client.put(URL + "scores", BODY, format="json").json()["secret"]
    answer = client.post(URL + "scores/rotate-secret", {"overlap": 60}, format="json")
    assert answer.status_code == 200
    assert answer.json()["secret"].startswith("whsec_") and answer.json()["secret"] != first


def test_it_answers_404_for_an_unknown_cache(make_token, api, db):
    _, raw = make_token("topics:publishsubscribe", "jobs:readwrite")
    assert api(raw).put("/api/v1/caches/nope/webhooks/x", BODY, format="json").status_code == 404


@pytest.mark.parametrize(
    "scopes",
    [("topics:subscribeonly:news", "jobs:readwrite"), ("topics:publishsubscribe:news", "jobs:readonly")],
)
def test_it_needs_publish_rights_and_the_jobs_write_right(client, news, scopes):
    answer = client.put(URL + "scores", BODY, format="json")
    assert answer.status_code == 403, answer.content


def test_it_needs_publish_rights_over_that_topic(make_token, api, news):
    _, raw = make_token("topics:publishsubscribe:news:topic=weather", "jobs:readwrite")
    assert api(raw).put(URL + "scores", BODY, format="json").status_code == 403
    assert api(raw).put(URL + "scores", {**BODY, "topic": "weather"}, format="json").status_code == 201


def test_webhooks_of_topics_beyond_the_token_do_not_exist_for_it(client, make_token, api, news):
    client.put(URL + "scores", BODY, format="json")
    _, raw = make_token("topics:publishsubscribe:news:topic=weather", "jobs:readwrite")
    assert api(raw).get(URL + "scores").status_code == 404
    assert api(raw).get(URL).json() == []
    assert api(raw).delete(URL + "scores").status_code == 404


def test_it_needs_a_token(api, news):
    assert api().get(URL).status_code == 401


@pytest.mark.parametrize(
    "destination",
    ["http://127.0.0.1/hook", "http://10.0.0.1/", "http://169.254.169.254/latest", "http://[::1]/", "http://0x7f.1/"],
)
def test_it_refuses_internal_destinations(client, news, settings, destination):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    answer = client.put(URL + "scores", {**BODY, "destination": destination}, format="json")
    assert answer.status_code == 400, answer.content
    assert "Refused" in answer.json()["destination"][0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"topic": "no spaces", "destination": "https://example.org/"}, "topic"),
        ({"topic": "sports", "destination": "ftp://example.org/"}, "destination"),
        ({"topic": "sports", "destination": "https://u:p@example.org/"}, "destination"),
        ({"topic": "sports"}, "destination"),
    ],
)
def test_it_says_what_is_wrong_with_a_webhook(client, news, body, field):
    answer = client.put(URL + "scores", body, format="json")
    assert answer.status_code == 400
    assert field in answer.json()
