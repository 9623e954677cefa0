import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def resource(name: str, *extra: tuple[str, set[str]]) -> list[tuple[str, set[str]]]:
    """The list and item operations of the resource `name`, and `extra` (path under the item, methods)."""
    base = f"/api/v1/{name}/"
    return [
        (base, {"get", "post"}),
        (f"{base}{{id}}/", {"get", "put", "patch", "delete"}),
        *((f"{base}{{id}}/{path}/", methods) for path, methods in extra),
    ]


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        *resource("schedule", ("send", {"post"})),
        *resource("messageset", ("messages", {"get"})),
        *resource("message", ("content", {"get"})),
        *resource("binarycontent"),
        ("/api/v1/messageset_languages/", {"get"}),
    ],
)
def test_every_content_operation_is_described(schema, path, methods):
    assert set(schema["paths"][path]) >= methods


def test_lists_describe_their_cursor_paging_and_filters(schema):
    operation = schema["paths"]["/api/v1/message/"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {
        "cursor",
        "page_size",
        "ordering",
        "messageset",
        "sequence_number",
        "lang",
    }
    page = schema["components"]["schemas"]["PaginatedMessageList"]
    assert set(page["properties"]) == {"next", "previous", "results"}


def test_uploads_are_described_as_multipart_files(schema):
    body = schema["paths"]["/api/v1/binarycontent/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert "application/json" not in body
    request = schema["components"]["schemas"]["BinaryContentRequest"]
    assert request["properties"]["content"]["format"] == "binary"


def test_writes_describe_their_field_errors(schema):
    responses = schema["paths"]["/api/v1/message/"]["post"]["responses"]
    common = {"401", "403", "404", "503"}
    assert set(responses) == {"201", "400", "413", *common}  # 413: a body over MAX_REQUEST_BODY_BYTES
    assert responses["400"]["description"].startswith("What is wrong, by field")  # its own, not the common one
    assert set(schema["paths"]["/api/v1/schedule/{id}/"]["delete"]["responses"]) == {"204", "400", *common}
