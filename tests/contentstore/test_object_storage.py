"""Binary content on S3-compatible object storage (MEDIA_STORAGE=s3), against a local S3 server over real HTTP.

The storage is configured as an operator would, from the environment through
config/settings.py, with a new bucket per test.
"""

import io
import re

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from contentstore.models import BinaryContent
from harness.object_storage import CREDENTIALS, REGION
from subscriptions.services.sending import media_url
from tests.core.test_settings import read_settings

from .factories import AUDIO_BYTES, PNG_BYTES, make_binary_content, make_message, make_messageset, upload

pytestmark = pytest.mark.django_db

URL = "/api/v1/binarycontent/"
ADMIN = "/admin/contentstore/binarycontent"


@pytest.fixture
def use_bucket(object_store, settings, monkeypatch):
    """use_bucket(**environment) -> a new bucket, where binary content is stored from then on, with
    MEDIA_STORAGE=s3 and the AWS_* variables (and any in `environment`) pointing at it."""

    def use(**environment: str) -> str:
        bucket = object_store.create_bucket()
        environment = {
            "MEDIA_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_S3_ENDPOINT_URL": object_store.url,
            "AWS_S3_REGION_NAME": REGION,
            **environment,
        }
        settings.STORAGES = read_settings(monkeypatch, **environment)["STORAGES"]
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        return bucket

    return use


@pytest.fixture
def bucket(use_bucket) -> str:
    return use_bucket()


def stored(object_store, bucket: str, key: str) -> tuple[bytes, str]:
    """An object's bytes and media type."""
    found = object_store.client().get_object(Bucket=bucket, Key=key)
    return found["Body"].read(), found["ContentType"]


def test_an_upload_is_stored_in_the_bucket_and_answered_with_a_signed_url(writer, object_store, bucket, _media_root):
    response = writer.post(URL, {"content": upload("Week 1.mp3")}, format="multipart")
    assert response.status_code == 201, response.content
    item = BinaryContent.objects.get()
    body = response.json()
    assert list(body) == ["id", "content"]
    assert body["content"].startswith(f"{object_store.url}/{bucket}/{item.content.name}?")
    assert "X-Amz-Signature=" in body["content"]
    assert object_store.keys(bucket) == [item.content.name]
    assert stored(object_store, bucket, item.content.name) == (AUDIO_BYTES, "audio/mpeg")
    downloaded = httpx.get(body["content"])
    assert (downloaded.status_code, downloaded.content) == (200, AUDIO_BYTES)
    assert not _media_root.exists()


def test_the_stored_media_type_is_the_extension_s_not_the_client_s(writer, object_store, bucket):
    sent = upload("poster.png", PNG_BYTES, content_type="text/html")
    assert writer.post(URL, {"content": sent}, format="multipart").status_code == 201
    assert stored(object_store, bucket, BinaryContent.objects.get().content.name) == (PNG_BYTES, "image/png")


def test_uploads_in_the_same_instant_get_objects_of_their_own(object_store, bucket, monkeypatch):
    monkeypatch.setattr(BinaryContent._meta.get_field("content"), "upload_to", lambda instance, filename: "same.mp3")
    first, second = make_binary_content("a.mp3"), make_binary_content("b.mp3", AUDIO_BYTES + b"2")
    assert first.content.name != second.content.name
    assert stored(object_store, bucket, first.content.name)[0] == AUDIO_BYTES
    assert stored(object_store, bucket, second.content.name)[0] == AUDIO_BYTES + b"2"


@pytest.mark.parametrize(
    ("sent", "limit"),
    [(upload("big.mp3", AUDIO_BYTES.ljust(2000, b"x")), 1000), (upload("page.mp3", b"<html>hello</html>"), None)],
)
def test_a_refused_upload_leaves_nothing_in_the_bucket(writer, object_store, bucket, settings, sent, limit):
    if limit:
        settings.BINARY_CONTENT_MAX_BYTES = limit
    response = writer.post(URL, {"content": sent}, format="multipart")
    assert response.status_code == 400
    assert list(response.json()) == ["content"]
    assert object_store.keys(bucket) == []
    assert not BinaryContent.objects.exists()


def test_replacing_the_file_deletes_the_old_object(writer, object_store, bucket, django_capture_on_commit_callbacks):
    item = make_binary_content("old.mp3")
    old_name = item.content.name
    with django_capture_on_commit_callbacks(execute=True):
        response = writer.put(f"{URL}{item.pk}/", {"content": upload("new.png", PNG_BYTES)}, format="multipart")
    assert response.status_code == 200, response.content
    item.refresh_from_db()
    assert item.content.name != old_name
    assert object_store.keys(bucket) == [item.content.name]
    assert response.json()["content"].startswith(f"{object_store.url}/{bucket}/{item.content.name}?")


def test_deleting_the_record_deletes_its_object(writer, object_store, bucket, django_capture_on_commit_callbacks):
    item = make_binary_content()
    with django_capture_on_commit_callbacks(execute=True):
        assert writer.delete(f"{URL}{item.pk}/").status_code == 204
    assert object_store.keys(bucket) == []


def test_a_file_in_use_is_kept_with_its_object(writer, object_store, bucket):
    item = make_binary_content()
    make_message(make_messageset(), binary_content=item)
    assert writer.delete(f"{URL}{item.pk}/").status_code == 400
    assert object_store.keys(bucket) == [item.content.name]


def test_a_location_prefixes_the_keys_and_not_the_names(writer, object_store, use_bucket):
    bucket = use_bucket(AWS_LOCATION="sbm/media")
    response = writer.post(URL, {"content": upload()}, format="multipart")
    name = BinaryContent.objects.get().content.name
    assert "/" not in name
    assert object_store.keys(bucket) == [f"sbm/media/{name}"]
    assert httpx.get(response.json()["content"]).content == AUDIO_BYTES


def test_plain_urls_when_signing_is_off_and_the_message_sender_gets_them(object_store, use_bucket, settings):
    bucket = use_bucket(AWS_QUERYSTRING_AUTH="false")
    settings.SEND_MEDIA_BASE_URL = "https://sbm.example.org"
    item = make_binary_content()
    message = make_message(make_messageset(), binary_content=item)
    assert item.content.url == f"{object_store.url}/{bucket}/{item.content.name}"
    assert media_url(message) == item.content.url  # not put after SEND_MEDIA_BASE_URL


def test_a_custom_domain_serves_the_files(use_bucket):
    use_bucket(AWS_S3_CUSTOM_DOMAIN="media.example.org")
    item = make_binary_content()
    assert item.content.url == f"https://media.example.org/{item.content.name}"


def test_the_admin_uploads_to_the_bucket_and_links_to_the_object(admin_client, object_store, bucket):
    response = admin_client.post(f"{ADMIN}/add/", {"content": upload("Week 2.mp3")})
    assert response.status_code == 302
    item = BinaryContent.objects.get()
    assert object_store.keys(bucket) == [item.content.name]
    page = admin_client.get(f"{ADMIN}/{item.pk}/change/").content.decode()
    assert f'href="{object_store.url}/{bucket}/{item.content.name}?' in page


def test_the_admin_refuses_a_bad_file_without_storing_it(admin_client, object_store, bucket):
    response = admin_client.post(f"{ADMIN}/add/", {"content": upload("page.png", b"<html></html>")})
    assert response.status_code == 200
    assert "its content is no audio or image format" in response.content.decode()
    assert object_store.keys(bucket) == []


def test_csv_import_finds_files_by_their_object_url_and_export_names_them(bucket, tmp_path):
    messageset = make_messageset("baby-eng")
    item = make_binary_content()
    path = tmp_path / "messages.csv"
    path.write_text(f"sequence_number,lang,text_content,binary_content\n1,eng,,{item.content.url}\n")
    call_command("import_messages", "baby-eng", str(path), "--no-progress", stdout=io.StringIO())
    assert messageset.messages.get().binary_content == item
    exported = io.StringIO()
    call_command("export_messages", "baby-eng", stdout=exported)
    assert f"1,eng,,{item.content.name}," in exported.getvalue()


@pytest.mark.django_db(transaction=True)  # the failed save rolls back a transaction of its own
def test_an_unreachable_store_is_a_503_and_nothing_is_written(writer, use_bucket, unused_port):
    use_bucket(AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{unused_port}", MEDIA_STORAGE_TIMEOUT="2")
    response = writer.post(URL, {"content": upload()}, format="multipart")
    assert response.status_code == 503
    assert response.json() == {"detail": "The file storage is unavailable; try again shortly."}
    assert not BinaryContent.objects.exists()


def test_the_admin_says_when_the_store_is_unreachable(admin_client, use_bucket, unused_port):
    use_bucket(AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{unused_port}")
    response = admin_client.post(f"{ADMIN}/add/", {"content": upload()}, follow=True)
    assert response.redirect_chain == [(f"{ADMIN}/add/", 302)]
    assert "The file storage is unavailable; try again shortly." in response.content.decode()
    assert not BinaryContent.objects.exists()


def test_deleting_while_the_store_is_unreachable_deletes_the_record(
    writer, use_bucket, unused_port, django_capture_on_commit_callbacks
):
    bucket = use_bucket()
    item = make_binary_content()
    use_bucket(AWS_STORAGE_BUCKET_NAME=bucket, AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{unused_port}")
    with django_capture_on_commit_callbacks(execute=True):
        assert writer.delete(f"{URL}{item.pk}/").status_code == 204
    assert not BinaryContent.objects.exists()


def test_the_filesystem_is_the_default(monkeypatch):
    assert read_settings(monkeypatch)["STORAGES"]["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"MEDIA_STORAGE": "s3"}, "AWS_STORAGE_BUCKET_NAME must be set when MEDIA_STORAGE is s3."),
        ({"MEDIA_STORAGE": "ftp"}, "MEDIA_STORAGE must be one of filesystem, s3, not 'ftp'."),
        (
            {"MEDIA_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": "media", "AWS_S3_ADDRESSING_STYLE": "sideways"},
            "AWS_S3_ADDRESSING_STYLE must be path or virtual.",
        ),
    ],
)
def test_a_bad_storage_setting_stops_start_up_naming_it(monkeypatch, environment, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        read_settings(monkeypatch, **environment)
