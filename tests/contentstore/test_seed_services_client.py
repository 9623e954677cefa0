"""The client in the field, `seed-services-client`, against a live server.

Its `seed_client` fixture (tests/conftest.py) sets the client up.
"""

import pytest

from contentstore.models import BinaryContent, Message

from .factories import make_message, make_messageset, make_schedule

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_client_reads_schedules_across_pages(seed_client):
    schedules = [make_schedule(minute=str(minute)) for minute in range(5)]
    listed = list(seed_client.get_schedules()["results"])
    assert [item["id"] for item in listed] == [schedule.pk for schedule in schedules]
    assert seed_client.get_schedule(schedules[0].pk)["minute"] == "0"


def test_the_client_reads_message_sets_and_their_languages(seed_client):
    schedule = make_schedule()
    sets = [make_messageset(f"set-{number}", schedule=schedule) for number in range(3)]
    make_message(sets[0], 1, "zul")
    make_message(sets[0], 1, "eng")
    listed = list(seed_client.get_messagesets({"content_type": "text"})["results"])
    assert [item["short_name"] for item in listed] == ["set-0", "set-1", "set-2"]
    assert seed_client.get_messageset(sets[1].pk)["short_name"] == "set-1"
    assert seed_client.get_messageset_languages() == {
        str(sets[0].pk): ["eng", "zul"],
        str(sets[1].pk): [],
        str(sets[2].pk): [],
    }


def test_the_client_manages_messages(seed_client):
    messageset = make_messageset()
    for number in range(1, 6):
        make_message(messageset, number, "eng")
        make_message(messageset, number, "zul")

    created = seed_client.create_message(
        {"messageset": messageset.pk, "sequence_number": 6, "lang": "eng", "text_content": "Week six"}
    )
    assert created["text_content"] == "Week six"
    assert seed_client.get_message(created["id"])["sequence_number"] == 6

    updated = seed_client.update_message(created["id"], {"text_content": "Week 6"})
    assert updated["text_content"] == "Week 6"

    english = list(seed_client.get_messages({"messageset": messageset.pk, "lang": "eng"})["results"])
    assert [item["sequence_number"] for item in english] == [1, 2, 3, 4, 5, 6]

    assert seed_client.delete_message(created["id"]) is None
    assert not Message.objects.filter(pk=created["id"]).exists()


def test_the_client_sees_refusals_as_errors(seed_client):
    from demands import HTTPServiceError  # once the fixture has made it importable

    messageset = make_messageset()
    make_message(messageset, 1, "eng")
    with pytest.raises(HTTPServiceError) as raised:
        seed_client.create_message(
            {"messageset": messageset.pk, "sequence_number": 1, "lang": "eng", "text_content": "x"}
        )
    assert raised.value.response.status_code == 400
    assert raised.value.details == {
        "non_field_errors": ["The fields messageset, sequence_number, lang must make a unique set."]
    }


def test_the_client_uploads_and_deletes_binary_content(seed_client, live_server, tmp_path):
    path = tmp_path / "welcome.mp3"
    path.write_bytes(b"ID3" + b"\x00" * 64)
    with path.open("rb") as file:
        created = seed_client.create_binarycontent({"content": file})
    item = BinaryContent.objects.get(pk=created["id"])
    assert created["content"] == f"{live_server.url}/media/{item.content.name}"

    message = seed_client.create_message(
        {"messageset": make_messageset().pk, "sequence_number": 1, "lang": "eng", "binary_content": item.pk}
    )
    assert message["binary_content"] == item.pk
    seed_client.delete_message(message["id"])

    assert seed_client.delete_binarycontent(item.pk) is None
    assert not BinaryContent.objects.exists()
