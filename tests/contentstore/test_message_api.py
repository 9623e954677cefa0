import pytest

from contentstore.models import Message

from .factories import make_binary_content, make_message, make_messageset

pytestmark = pytest.mark.django_db

URL = "/api/v1/message/"


def post(client, messageset, **fields):
    body = {"messageset": messageset.pk, "sequence_number": 1, "lang": "eng", **fields}
    return client.post(URL, body, format="json")


def shown(message: Message, body: dict, **fields) -> dict:
    """How the API shows `message` with `fields`: its id, its set's id, the fields, the times `body` gives."""
    return {
        "id": message.pk,
        "messageset": message.messageset_id,
        **fields,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }


def test_it_creates_a_message(writer):
    messageset = make_messageset()
    response = post(writer, messageset, text_content="Hello", metadata={"week": 5})
    assert response.status_code == 201, response.content
    message = Message.objects.get()
    body = response.json()
    assert message.messageset == messageset
    assert body == shown(
        message, body, sequence_number=1, lang="eng", text_content="Hello", binary_content=None, metadata={"week": 5}
    )


def test_it_creates_a_message_with_only_a_file(writer):
    file = make_binary_content()
    response = post(writer, make_messageset(), binary_content=file.pk)
    assert response.status_code == 201, response.content
    assert Message.objects.get().binary_content == file


def test_it_refuses_a_message_without_text_or_file(writer):
    response = post(writer, make_messageset(), text_content="")
    assert response.status_code == 400
    assert response.json() == {"text_content": ["Messages must have text or file attached"]}
    assert not Message.objects.exists()


def test_it_names_the_typographic_characters_it_refuses(writer):
    response = post(writer, make_messageset(), text_content="“Hello” – it’s me")  # noqa: RUF001
    assert response.status_code == 400
    assert response.json() == {
        "text_content": [
            'Text has special characters which can be replaced: “ (use "), ” (use "), – (use -), ’ (use \').'  # noqa: RUF001
        ]
    }


@pytest.mark.parametrize("text", ["Line one\nline two", "Tab\there", "Four    spaces"])
def test_it_refuses_layout_whatsapp_cannot_show(writer, text):
    response = post(writer, make_messageset(channel="JUNE_WhatsApp_TEXT"), text_content=text)
    assert response.status_code == 400
    assert response.json() == {
        "text_content": ["Text for WhatsApp must not include newline, tabs, or 4 consecutive spaces."]
    }


def test_it_allows_that_layout_on_other_channels(writer):
    response = post(writer, make_messageset(channel="sms"), text_content="Line one\nline two")
    assert response.status_code == 201


def test_the_whatsapp_rule_applies_when_a_message_moves_to_a_whatsapp_set(writer):
    message = make_message(make_messageset("sms-set"), text_content="Two\nlines")
    whatsapp = make_messageset("wa-set", channel="whatsapp")
    response = writer.patch(f"{URL}{message.pk}/", {"messageset": whatsapp.pk}, format="json")
    assert response.status_code == 400
    assert "text_content" in response.json()


def test_it_refuses_a_second_message_at_the_same_position(writer):
    messageset = make_messageset()
    make_message(messageset, 1, "eng")
    response = post(writer, messageset, text_content="Again")
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["The fields messageset, sequence_number, lang must make a unique set."]
    }


def test_it_refuses_metadata_that_is_not_an_object(writer):
    response = post(writer, make_messageset(), text_content="Hi", metadata=[1, 2])
    assert response.status_code == 400
    assert response.json() == {"metadata": ["Must be a JSON object."]}


def test_it_refuses_a_sequence_number_below_one(writer):
    response = post(writer, make_messageset(), text_content="Hi", sequence_number=0)
    assert response.status_code == 400
    assert response.json() == {"sequence_number": ["Ensure this value is greater than or equal to 1."]}


def test_it_changes_a_message(writer):
    message = make_message(make_messageset())
    response = writer.patch(f"{URL}{message.pk}/", {"text_content": "New text"}, format="json")
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.text_content == "New text"


def test_it_refuses_to_remove_the_only_content_of_a_message(writer):
    message = make_message(make_messageset())
    response = writer.patch(f"{URL}{message.pk}/", {"text_content": None}, format="json")
    assert response.status_code == 400
    assert response.json() == {"text_content": ["Messages must have text or file attached"]}


def test_it_replaces_a_message(writer):
    messageset = make_messageset()
    message = make_message(messageset)
    body = {"messageset": messageset.pk, "sequence_number": 2, "lang": "zul", "text_content": "Sawubona"}
    response = writer.put(f"{URL}{message.pk}/", body, format="json")
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert (message.sequence_number, message.lang, message.text_content) == (2, "zul", "Sawubona")


def test_it_deletes_a_message(writer):
    message = make_message(make_messageset())
    response = writer.delete(f"{URL}{message.pk}/")
    assert response.status_code == 204
    assert not Message.objects.exists()


def test_it_filters_messages_by_set_sequence_number_and_lang(reader):
    baby, toddler = make_messageset("baby"), make_messageset("toddler")
    wanted = make_message(baby, 2, "zul")
    make_message(baby, 2, "eng")
    make_message(baby, 1, "zul")
    make_message(toddler, 2, "zul")
    response = reader.get(URL, {"messageset": baby.pk, "sequence_number": 2, "lang": "zul"})
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [wanted.pk]


@pytest.mark.parametrize("value", ["first", "0.5"])
def test_it_refuses_a_filter_value_of_the_wrong_kind(reader, value):
    response = reader.get(URL, {"sequence_number": value})
    assert response.status_code == 400
    assert response.json() == {"sequence_number": ["Enter a whole number."]}


def test_it_shows_a_messages_content_without_metadata(reader):
    file = make_binary_content()
    message = make_message(make_messageset(), binary_content=file, metadata={"secret": 1})
    response = reader.get(f"{URL}{message.pk}/content")
    assert response.status_code == 200
    body = response.json()
    assert body == shown(
        message,
        body,
        sequence_number=1,
        lang="eng",
        text_content="Message 1 in eng",
        binary_content={"id": file.pk, "content": f"http://testserver/media/{file.content.name}"},
    )


def test_the_content_path_takes_a_trailing_slash_too(reader):
    message = make_message(make_messageset())
    assert reader.get(f"{URL}{message.pk}/content/").status_code == 200
