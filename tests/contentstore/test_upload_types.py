"""An upload is judged by its bytes and its name together, and SVG is refused in any disguise.

A file is stored under its own name's extension and served as the type that extension says, so
the name must say exactly the format the bytes are (a GIF named .svg or .png is refused), for every
format the service recognises against every extension.
"""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from contentstore import validators
from contentstore.models import BinaryContent

from .factories import upload

URL = "/api/v1/binarycontent/"
PADDING = b"\x00" * 64
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"/>'

# The first bytes of each format, with the extensions a file of it may be named with.
FORMATS = {
    "png": (b"\x89PNG\r\n\x1a\n", {".png"}),
    "jpeg": (b"\xff\xd8\xff\xe0", {".jpg", ".jpeg", ".jpe", ".jfif"}),
    "gif": (b"GIF89a", {".gif"}),
    "webp": (b"RIFF\x00\x00\x00\x00WEBPVP8 ", {".webp"}),
    "bmp": (b"BM", {".bmp"}),
    "tiff": (b"II*\x00\x08\x00\x00\x00", {".tif", ".tiff"}),
    "ico": (b"\x00\x00\x01\x00", {".ico"}),
    "heic": (b"\x00\x00\x00\x18ftypheic", {".heic", ".heif"}),
    "avif": (b"\x00\x00\x00\x18ftypavif", {".avif"}),
    "mp3": (b"ID3\x03", {".mp3"}),
    "ogg": (b"OggS\x00\x02", {".ogg", ".oga", ".opus", ".spx"}),
    "wav": (b"RIFF\x00\x00\x00\x00WAVEfmt ", {".wav"}),
    "flac": (b"fLaC", {".flac"}),
    "amr": (b"#!AMR\n", {".amr"}),
    "m4a": (b"\x00\x00\x00\x20ftypM4A ", {".m4a"}),
    "aiff": (b"FORM\x00\x00\x00\x00AIFF", {".aif", ".aiff", ".aifc"}),
    "aac": (b"\xff\xf1", {".aac"}),
}
EXTENSIONS = sorted(
    {extension for _, extensions in FORMATS.values() for extension in extensions}
    | {".svg", ".SVG", ".svgz", ".3gp", ".mp4", ".html", ".htm", ".xml", ".txt", ".js", ".exe", ""}
)


def refusal(name: str, data: bytes) -> list[str]:
    try:
        validators.validate_upload_type(SimpleUploadedFile(name, data))
    except ValidationError as error:
        return error.messages
    return []


@pytest.mark.parametrize("allowed", [["audio/*", "image/*"], ["*/*"]])
@pytest.mark.parametrize("format_name", FORMATS)
def test_a_file_is_accepted_only_under_an_extension_of_its_own_format(settings, allowed, format_name):
    settings.BINARY_CONTENT_TYPES = allowed
    head, own_extensions = FORMATS[format_name]
    wrong = []
    for extension in EXTENSIONS:
        name = f"upload{extension}"
        accepted = refusal(name, head + PADDING) == []
        expected = extension.lower() in own_extensions and validators.guess_media_type(name) is not None
        if accepted != expected:
            wrong.append((extension, "accepted" if accepted else "refused"))
    assert wrong == []


@pytest.mark.parametrize("allowed", [["audio/*", "image/*"], ["*/*"], ["image/svg+xml"]])
@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param("poster.svg", b"GIF89a" + SVG, id="svg named, gif and svg bytes"),
        pytest.param("poster.svg", b"GIF89a" + PADDING, id="svg named, gif bytes"),
        pytest.param("poster.SVG", b"\x89PNG\r\n\x1a\n" + PADDING, id="SVG named, png bytes"),
        pytest.param("poster.svgz", b"GIF89a" + PADDING, id="svgz named, gif bytes"),
        pytest.param("poster.svg", SVG, id="svg named, svg bytes"),
        pytest.param("poster.png", SVG, id="png named, svg bytes"),
        pytest.param("poster.gif", b"GIF89a" + SVG, id="gif named, gif and svg bytes"),
        pytest.param("poster.gif", b"GIF89a\x01\x00\x01\x00" + PADDING + b"<SVG onload=alert(1)>", id="svg later"),
        pytest.param("poster.png.svg", b"\x89PNG\r\n\x1a\n" + PADDING, id="png.svg named, png bytes"),
        pytest.param("poster.svg.", b"GIF89a" + PADDING, id="trailing dot"),
        pytest.param("poster.svg ", b"GIF89a" + PADDING, id="trailing space"),
    ],
)
def test_svg_is_refused_in_any_disguise(settings, allowed, name, data):
    settings.BINARY_CONTENT_TYPES = allowed
    assert refusal(name, data) != []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("poster.svg", b"GIF89a" + PADDING, "is of type image/svg+xml, which is never accepted: it can carry scripts."),
        (
            "poster.png",
            b"GIF89a" + PADDING,
            "is named as image/png but its content is image/gif data; upload the file itself.",
        ),
        ("poster.gif", b"GIF89a" + SVG, "holds SVG markup, which is never accepted: it can carry scripts."),
    ],
)
def test_a_refused_upload_is_a_400_saying_why(writer, name, data, problem):
    response = writer.post(URL, {"content": upload(name, data, "image/gif")}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"content": [f"{name!r} {problem}"]}
    assert not BinaryContent.objects.exists()


@pytest.mark.django_db
def test_a_replacement_is_judged_the_same_way(writer):
    created = writer.post(URL, {"content": upload("poster.gif", b"GIF89a" + PADDING, "image/gif")}, format="multipart")
    assert created.status_code == 201
    pk = created.json()["id"]
    response = writer.put(f"{URL}{pk}/", {"content": upload("poster.svg", b"GIF89a" + PADDING)}, format="multipart")
    assert response.status_code == 400
    assert BinaryContent.objects.get(pk=pk).content.name.endswith(".gif")


@pytest.mark.django_db
def test_the_admin_refuses_an_svg_disguised_as_a_gif(admin_client):
    response = admin_client.post(
        "/admin/contentstore/binarycontent/add/", {"content": upload("poster.svg", b"GIF89a" + PADDING)}
    )
    assert response.status_code == 200  # the form again, with the error
    assert "never accepted: it can carry scripts" in response.content.decode()
    assert not BinaryContent.objects.exists()
