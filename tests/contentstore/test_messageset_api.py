import pytest

from contentstore.models import Message, MessageSet

from .factories import make_binary_content, make_message, make_messageset, make_schedule

pytestmark = pytest.mark.django_db

URL = "/api/v1/messageset/"


def test_it_creates_a_message_set_with_its_channel(writer):
    schedule = make_schedule()
    response = writer.post(
        URL,
        {"short_name": "momconnect-whatsapp", "default_schedule": schedule.pk, "channel": "WHATSAPP"},
        format="json",
    )
    assert response.status_code == 201, response.content
    messageset = MessageSet.objects.get()
    body = response.json()
    assert body == {
        "id": messageset.pk,
        "short_name": "momconnect-whatsapp",
        "label": "",
        "content_type": "text",
        "notes": None,
        "channel": "WHATSAPP",
        "next_set": None,
        "default_schedule": schedule.pk,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }


def test_it_requires_a_short_name_and_a_default_schedule(writer):
    response = writer.post(URL, {}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "short_name": ["This field is required."],
        "default_schedule": ["This field is required."],
    }


def test_it_refuses_a_short_name_already_taken(writer):
    make_messageset("baby")
    response = writer.post(URL, {"short_name": "baby", "default_schedule": make_schedule().pk}, format="json")
    assert response.status_code == 400
    assert response.json() == {"short_name": ["message set with this short name already exists."]}


def test_it_refuses_an_unknown_content_type_and_schedule(writer):
    response = writer.post(URL, {"short_name": "x", "default_schedule": 999, "content_type": "video"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "default_schedule": ['Invalid pk "999" - object does not exist.'],
        "content_type": ['"video" is not a valid choice.'],
    }


def test_it_filters_message_sets_by_short_name_and_content_type(reader):
    schedule = make_schedule()
    audio = make_messageset("audio", schedule=schedule, content_type="audio")
    make_messageset("text", schedule=schedule)
    response = reader.get(URL, {"content_type": "audio"})
    assert [item["id"] for item in response.json()["results"]] == [audio.pk]
    response = reader.get(URL, {"short_name": "audio"})
    assert [item["id"] for item in response.json()["results"]] == [audio.pk]
    response = reader.get(URL, {"short_name": "nothing"})
    assert response.json()["results"] == []


def test_it_updates_a_message_set(writer):
    messageset = make_messageset("baby")
    follow_on = make_messageset("toddler")
    response = writer.patch(f"{URL}{messageset.pk}/", {"next_set": follow_on.pk, "label": "Baby"}, format="json")
    assert response.status_code == 200, response.content
    messageset.refresh_from_db()
    assert (messageset.next_set, messageset.label) == (follow_on, "Baby")


def test_it_deletes_a_message_set_with_its_messages(writer):
    messageset = make_messageset()
    make_message(messageset)
    response = writer.delete(f"{URL}{messageset.pk}/")
    assert response.status_code == 204
    assert not MessageSet.objects.exists()
    assert not Message.objects.exists()


def test_it_shows_a_set_with_its_messages_in_order(reader):
    messageset = make_messageset()
    file = make_binary_content()
    second = make_message(messageset, 2, "eng", metadata={"hidden": True})
    first_zul = make_message(messageset, 1, "zul")
    first_eng = make_message(messageset, 1, "eng", binary_content=file)
    response = reader.get(f"{URL}{messageset.pk}/messages")
    assert response.status_code == 200
    body = response.json()
    assert body["short_name"] == "baby"
    assert [message["id"] for message in body["messages"]] == [first_eng.pk, first_zul.pk, second.pk]
    assert body["messages"][0]["binary_content"] == {
        "id": file.pk,
        "content": f"http://testserver/media/{file.content.name}",
    }
    assert body["messages"][1]["binary_content"] is None
    assert "metadata" not in body["messages"][2]


def test_the_messages_path_takes_a_trailing_slash_too(reader):
    messageset = make_messageset()
    assert reader.get(f"{URL}{messageset.pk}/messages/").status_code == 200


def test_it_lists_each_sets_languages(reader):
    schedule = make_schedule()
    baby = make_messageset("baby", schedule=schedule)
    empty = make_messageset("empty", schedule=schedule)
    for lang in ("zul", "eng", "afr"):
        make_message(baby, 1, lang)
    make_message(baby, 2, "eng")
    response = reader.get("/api/v1/messageset_languages/")
    assert response.status_code == 200
    assert response.json() == {str(baby.pk): ["afr", "eng", "zul"], str(empty.pk): []}


def test_the_messages_of_a_set_are_read_in_a_fixed_number_of_queries(reader, django_assert_num_queries):
    messageset = make_messageset()
    for number in range(1, 6):
        make_message(messageset, number, binary_content=make_binary_content())
    url = f"{URL}{messageset.pk}/messages"
    reader.get(url)  # the token's first use is recorded once
    with django_assert_num_queries(3):  # token, set, messages with their files
        assert reader.get(url).status_code == 200
