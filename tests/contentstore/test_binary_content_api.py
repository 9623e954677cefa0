import re
from pathlib import Path

import pytest

from contentstore.models import BinaryContent

from .factories import AUDIO_BYTES, OGG_BYTES, PNG_BYTES, make_binary_content, make_message, make_messageset, upload
from .helpers import assert_delete_refused

pytestmark = pytest.mark.django_db

URL = "/api/v1/binarycontent/"


def stored_path(item: BinaryContent) -> Path:
    return Path(item.content.path)


def test_it_stores_an_upload_under_a_time_based_name(writer, _media_root):
    response = writer.post(URL, {"content": upload("Week 1 Intro.MP3")}, format="multipart")
    assert response.status_code == 201, response.content
    item = BinaryContent.objects.get()
    assert re.fullmatch(r"\d{20}\.MP3", item.content.name)
    assert response.json() == {"id": item.pk, "content": f"http://testserver/media/{item.content.name}"}
    assert (_media_root / item.content.name).read_bytes() == AUDIO_BYTES


def test_it_accepts_images(writer):
    response = writer.post(URL, {"content": upload("poster.png", b"\x89PNG....")}, format="multipart")
    assert response.status_code == 201, response.content


def test_it_needs_a_file(writer):
    response = writer.post(URL, {}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"content": ["No file was submitted."]}


def test_it_refuses_a_file_over_the_size_limit_naming_it(writer, settings):
    settings.BINARY_CONTENT_MAX_BYTES = 1000
    response = writer.post(URL, {"content": upload(data=AUDIO_BYTES.ljust(1001, b"x"))}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {
        "content": ["The file is 1001 bytes; uploads may be at most 1000 bytes (1000 bytes, BINARY_CONTENT_MAX_BYTES)."]
    }
    assert not BinaryContent.objects.exists()


def test_it_refuses_a_body_far_over_the_limit_before_reading_it(writer, settings, _media_root):
    settings.BINARY_CONTENT_MAX_BYTES = 1000
    response = writer.post(URL, {"content": upload(data=b"x" * 200_000)}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {
        "content": ["The upload is larger than the 1000 bytes allowed (BINARY_CONTENT_MAX_BYTES)."]
    }
    assert not _media_root.exists() or not any(_media_root.iterdir())


def test_it_refuses_a_type_not_allowed_naming_the_allowed_ones(writer):
    response = writer.post(URL, {"content": upload("notes.txt", b"hello", "text/plain")}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {
        "content": ["'notes.txt' is of type text/plain; allowed types: audio/*, image/* (BINARY_CONTENT_TYPES)."]
    }


def test_it_refuses_a_file_whose_type_cannot_be_told(writer):
    response = writer.post(URL, {"content": upload("recording", b"data")}, format="multipart")
    assert response.status_code == 400
    assert "of unknown type" in response.json()["content"][0]


@pytest.mark.parametrize(
    ("name", "data", "found"),
    [
        ("page.mp3", b"<html><script>alert(1)</script></html>", "no audio or image format this service recognises"),
        ("song.mp3", PNG_BYTES, "image/png data"),
        ("poster.png", AUDIO_BYTES, "audio/mpeg data"),
    ],
)
def test_it_refuses_a_file_whose_content_is_not_what_its_name_says(writer, name, data, found):
    response = writer.post(URL, {"content": upload(name, data)}, format="multipart")
    assert response.status_code == 400
    named = "image/png" if name.endswith(".png") else "audio/mpeg"
    assert response.json() == {
        "content": [f"'{name}' is named as {named} but its content is {found}; upload the file itself."]
    }
    assert not BinaryContent.objects.exists()


def test_the_allowed_types_are_a_setting(writer, settings):
    settings.BINARY_CONTENT_TYPES = ["audio/ogg"]
    assert writer.post(URL, {"content": upload("a.ogg", OGG_BYTES)}, format="multipart").status_code == 201
    assert writer.post(URL, {"content": upload("a.mp3")}, format="multipart").status_code == 400


def test_it_lists_and_shows_binary_content_with_absolute_urls(reader):
    item = make_binary_content()
    listed = reader.get(URL).json()["results"]
    shown = reader.get(f"{URL}{item.pk}/").json()
    expected = {"id": item.pk, "content": f"http://testserver/media/{item.content.name}"}
    assert listed == [expected]
    assert shown == expected


def test_it_replaces_the_file_and_deletes_the_old_one(writer, django_capture_on_commit_callbacks):
    item = make_binary_content("old.mp3")
    old = stored_path(item)
    with django_capture_on_commit_callbacks(execute=True):
        response = writer.put(f"{URL}{item.pk}/", {"content": upload("new.ogg", OGG_BYTES)}, format="multipart")
    assert response.status_code == 200, response.content
    item.refresh_from_db()
    assert item.content.name.endswith(".ogg")
    assert stored_path(item).exists()
    assert not old.exists()


def test_deleting_the_record_deletes_its_file(writer, django_capture_on_commit_callbacks):
    item = make_binary_content()
    path = stored_path(item)
    with django_capture_on_commit_callbacks(execute=True):
        response = writer.delete(f"{URL}{item.pk}/")
    assert response.status_code == 204
    assert not BinaryContent.objects.exists()
    assert not path.exists()


def test_it_refuses_to_delete_a_file_messages_use(writer, django_capture_on_commit_callbacks):
    item = make_binary_content()
    make_message(make_messageset("baby"), 3, "eng", binary_content=item)
    with django_capture_on_commit_callbacks(execute=True):
        response = writer.delete(f"{URL}{item.pk}/")
    assert_delete_refused(response, what="binary content", pk=item.pk, users="1 message (Message 3 in eng of baby)")
    assert stored_path(item).exists()


def test_it_does_not_take_json(writer):
    response = writer.post(URL, {"content": "x"}, format="json")
    assert response.status_code == 415
