"""The client in the field, `seed-services-client`, against a live server.

Its HTTP library (`demands`) still calls `inspect.getargspec`, which Python 3.11
removed; the client's own calls are unchanged.
"""

import inspect

import pytest

if not hasattr(inspect, "getargspec"):
    inspect.getargspec = inspect.getfullargspec

from demands import HTTPServiceError
from seed_services_client import StageBasedMessagingApiClient

from contentstore.models import BinaryContent, Message

from .factories import make_message, make_messageset, make_schedule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, make_token, settings) -> StageBasedMessagingApiClient:
    settings.API_PAGE_SIZE = 2  # so that every list below spans several pages
    _, raw = make_token("messaging:write")
    return StageBasedMessagingApiClient(raw, f"{live_server.url}/api/v1")


def test_the_client_reads_schedules_across_pages(client):
    schedules = [make_schedule(minute=str(minute)) for minute in range(5)]
    listed = list(client.get_schedules()["results"])
    assert [item["id"] for item in listed] == [schedule.pk for schedule in schedules]
    assert client.get_schedule(schedules[0].pk)["minute"] == "0"


def test_the_client_reads_message_sets_and_their_languages(client):
    schedule = make_schedule()
    sets = [make_messageset(f"set-{number}", schedule=schedule) for number in range(3)]
    make_message(sets[0], 1, "zul")
    make_message(sets[0], 1, "eng")
    listed = list(client.get_messagesets({"content_type": "text"})["results"])
    assert [item["short_name"] for item in listed] == ["set-0", "set-1", "set-2"]
    assert client.get_messageset(sets[1].pk)["short_name"] == "set-1"
    assert client.get_messageset_languages() == {
        str(sets[0].pk): ["eng", "zul"],
        str(sets[1].pk): [],
        str(sets[2].pk): [],
    }


def test_the_client_manages_messages(client):
    messageset = make_messageset()
    for number in range(1, 6):
        make_message(messageset, number, "eng")
        make_message(messageset, number, "zul")

    created = client.create_message(
        {"messageset": messageset.pk, "sequence_number": 6, "lang": "eng", "text_content": "Week six"}
    )
    assert created["text_content"] == "Week six"
    assert client.get_message(created["id"])["sequence_number"] == 6

    updated = client.update_message(created["id"], {"text_content": "Week 6"})
    assert updated["text_content"] == "Week 6"

    english = list(client.get_messages({"messageset": messageset.pk, "lang": "eng"})["results"])
    assert [item["sequence_number"] for item in english] == [1, 2, 3, 4, 5, 6]

    assert client.delete_message(created["id"]) is None
    assert not Message.objects.filter(pk=created["id"]).exists()


def test_the_client_sees_refusals_as_errors(client):
    messageset = make_messageset()
    make_message(messageset, 1, "eng")
    with pytest.raises(HTTPServiceError) as raised:
        client.create_message({"messageset": messageset.pk, "sequence_number": 1, "lang": "eng", "text_content": "x"})
    assert raised.value.response.status_code == 400
    assert raised.value.details == {
        "non_field_errors": ["The fields messageset, sequence_number, lang must make a unique set."]
    }


def test_the_client_uploads_and_deletes_binary_content(client, live_server, tmp_path):
    path = tmp_path / "welcome.mp3"
    path.write_bytes(b"ID3" + b"\x00" * 64)
    with path.open("rb") as file:
        created = client.create_binarycontent({"content": file})
    item = BinaryContent.objects.get(pk=created["id"])
    assert created["content"] == f"{live_server.url}/media/{item.content.name}"

    message = client.create_message(
        {"messageset": make_messageset().pk, "sequence_number": 1, "lang": "eng", "binary_content": item.pk}
    )
    assert message["binary_content"] == item.pk
    client.delete_message(message["id"])

    assert client.delete_binarycontent(item.pk) is None
    assert not BinaryContent.objects.exists()
