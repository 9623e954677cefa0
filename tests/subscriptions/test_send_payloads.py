"""The bytes a schedule fire puts on the wire: the reference payloads, headers and paths."""

import pytest

from .conftest import MEDIA_BASE
from .factories import fresh, make_file, make_messages, make_messageset, make_subscription

pytestmark = pytest.mark.django_db

IDENTITY = "8646b7bc-b511-4965-a90b-e1145e398703"


def test_a_text_message_is_sent_as_the_reference_payload(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 2)
    subscription = make_subscription(messageset, identity=IDENTITY)

    fire(messageset.default_schedule)

    assert sender.payloads() == [
        {
            "to_identity": IDENTITY,
            "delivered": "false",
            "resend": "false",
            "metadata": {},
            "content": "Message 1 in eng",
        }
    ]
    request = sender.requests()[0]
    assert request.headers["Authorization"] == "Token sender-token"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == f"{subscription.pk}:1"


def test_the_sets_channel_and_the_messages_metadata_go_with_it(sender, fire):
    messageset = make_messageset(channel="WHATSAPP")
    make_messages(messageset, 2, metadata={"template": "mc_prebirth", "priority": 1})
    make_subscription(messageset, identity=IDENTITY)

    fire(messageset.default_schedule)

    (payload,) = sender.payloads()
    assert payload["channel"] == "WHATSAPP"
    assert payload["metadata"] == {"template": "mc_prebirth", "priority": 1}


def test_a_text_message_with_a_file_adds_its_absolute_url_as_image_url(sender, fire):
    messageset = make_messageset()
    picture = make_file("week1.png")
    make_messages(messageset, 1, binary_content=picture, metadata={"a": "b"})
    make_subscription(messageset, identity=IDENTITY)

    fire(messageset.default_schedule)

    (payload,) = sender.payloads()
    assert payload["content"] == "Message 1 in eng"
    assert payload["metadata"] == {"a": "b", "image_url": f"{MEDIA_BASE}/media/{picture.content.name}"}


def test_an_audio_message_sends_no_content_and_its_file_as_voice_speech_url(sender, fire):
    messageset = make_messageset(content_type="audio")
    audio = make_file("week1.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 32)
    make_messages(messageset, 1, binary_content=audio, text_content=None)
    make_subscription(messageset, identity=IDENTITY)

    fire(messageset.default_schedule)

    assert sender.payloads() == [
        {
            "to_identity": IDENTITY,
            "delivered": "false",
            "resend": "false",
            "metadata": {"voice_speech_url": [f"{MEDIA_BASE}/media/{audio.content.name}"]},
        }
    ]


def test_prepend_next_delivery_is_put_before_the_text_once(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(
        messageset, identity=IDENTITY, metadata={"prepend_next_delivery": "Welcome!", "source": "clinic"}
    )

    fire(messageset.default_schedule)

    assert sender.payloads()[0]["content"] == "Welcome!\nMessage 1 in eng"
    assert fresh(subscription).metadata == {"prepend_next_delivery": None, "source": "clinic"}


def test_prepend_next_delivery_on_an_audio_set_comes_first_in_voice_speech_url(sender, fire):
    messageset = make_messageset(content_type="audio")
    audio = make_file("week1.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 32)
    make_messages(messageset, 2, binary_content=audio, text_content=None)
    subscription = make_subscription(messageset, metadata={"prepend_next_delivery": "https://cdn.example.org/hi.mp3"})

    fire(messageset.default_schedule)

    (payload,) = sender.payloads()
    assert payload["metadata"]["voice_speech_url"] == [
        "https://cdn.example.org/hi.mp3",
        f"{MEDIA_BASE}/media/{audio.content.name}",
    ]
    assert fresh(subscription).metadata == {"prepend_next_delivery": None}


def test_the_address_comes_from_the_identity_store_when_one_is_set(identity_store, fire):
    messageset = make_messageset()
    make_messages(messageset, 2)
    make_subscription(messageset, identity=IDENTITY)
    identity_store.addresses({IDENTITY: "+27820001001"})

    fire(messageset.default_schedule)

    (lookup,) = identity_store.requests(f"/identities/{IDENTITY}/addresses/msisdn")
    assert lookup.args.to_dict() == {"default": "True", "use_communicate_through": "True"}
    assert lookup.headers["Authorization"] == "Token identity-token"
    (payload,) = identity_store.payloads()
    assert payload["to_addr"] == "+27820001001"
    assert payload["to_identity"] == IDENTITY
