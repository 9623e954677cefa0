import json
import re

import pytest
import redis
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.test import Client

from core.errors import AuthenticationError, ScopeDenied
from core.exceptions import api_exception_handler
from core.views import server_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api/nothing-here/", "/api/v1/nope", "/api/v1/tokens/1/extra/"])
def test_unknown_api_paths_are_json_404s(method, path):
    client = Client(enforce_csrf_checks=True)  # as a client without a CSRF cookie is
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f"No API endpoint at {path}."}


def test_the_schema_is_openapi_3_and_lists_the_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/user/token/", "/api/v1/tokens/", "/api/v1/tokens/{id}/"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"


def test_the_schema_is_served_even_with_a_bad_token(client):
    response = client.get("/api/schema/", HTTP_AUTHORIZATION="Token nonsense")
    assert response.status_code == 200


def test_the_interactive_docs_load_from_this_service(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    # Every script, style and icon from this service: no absolute or scheme-relative address. (Not a search for
    # "cdn": the page's random CSRF token spells it about once in 500 renders.)
    resources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert resources
    assert [url for url in resources if not url.startswith("/") or url.startswith("//")] == []
    assert "://" not in page


def test_the_admin_login_page_is_served(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b"Django administration" in response.content or b"Log in" in response.content


def test_a_malformed_json_body_is_a_400_saying_so(make_token, api):
    _, raw = make_token("tokens:mint")
    response = api(raw).post("/api/v1/tokens/", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (OperationalError("connection refused"), 503, {"detail": "The database is unavailable; try again shortly."}),
        (redis.ConnectionError("refused"), 503, {"detail": "Redis is unavailable; try again shortly."}),
        (DjangoValidationError({"name": ["Too long."]}), 400, {"name": ["Too long."]}),
        (DjangoValidationError("Nope."), 400, {"non_field_errors": ["Nope."]}),
        (
            DjangoValidationError({"__all__": ["Clash."], "name": ["Bad."]}),
            400,
            {"non_field_errors": ["Clash."], "name": ["Bad."]},
        ),
        (ScopeDenied("Not yours."), 403, {"detail": "Not yours."}),
        (AuthenticationError("Invalid token."), 401, {"detail": "Invalid token."}),
    ],
)
def test_the_exception_handler_gives_each_domain_error_its_status(error, status, body):
    response = api_exception_handler(error, {"request": None, "view": None})
    assert response.status_code == status
    assert response.data == body


def test_an_unexpected_api_error_is_a_json_500_without_internals(rf):
    response = server_error(rf.get("/api/v1/anything/"))
    assert response.status_code == 500
    assert json.loads(response.content) == {"detail": "Internal server error."}


def test_an_unexpected_admin_error_is_djangos_plain_500_page(rf):
    response = server_error(rf.get("/admin/"))
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


def test_a_value_the_database_cannot_hold_is_a_400_not_a_500(reader):
    # Django reads this offset, PostgreSQL refuses it (offsets stop at 15:59).
    response = reader.get("/api/v1/subscriptions/", {"created_after": "0992-09-19T13:03:49-23:57"})
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": [
            "The database refused a value of this request: time zone displacement out of range: "
            '"0992-09-19 13:03:49-23:57".'
        ]
    }


def test_every_api_operation_documents_the_common_errors(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "/api/metrics/" in schema["paths"]
    for path, operations in schema["paths"].items():
        if path.startswith("/api/"):
            for method, operation in operations.items():
                assert {"400", "401", "403", "404", "503"} <= set(operation["responses"]), (method, path)


def test_a_refused_csrf_check_is_json_outside_the_admin(rf):
    from core.views import csrf_failure

    response = csrf_failure(rf.post("/api/v1/schedule/"), reason="CSRF cookie not set.")
    assert response.status_code == 403
    assert json.loads(response.content) == {"detail": "CSRF verification failed: CSRF cookie not set."}
    assert "text/html" in csrf_failure(rf.post("/admin/login/"), reason="CSRF cookie not set.")["Content-Type"]


def test_validation_errors_are_described_with_the_unreadable_body_case(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    errors = schema["paths"]["/api/v1/schedule/"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert errors["properties"]["detail"] == {"type": "string"}  # {"detail": "JSON parse error - ..."}


def test_a_token_without_a_parent_is_described_as_such(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["components"]["schemas"]["Token"]["properties"]["parent"]["nullable"] is True


@pytest.mark.parametrize("path", ["/api/v1/schedule/", "/api/v1/subscriptions/request/", "/api/v1/message/"])
def test_a_body_over_the_limit_is_a_413_naming_it(writer, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = writer.post(path, {"minute": "0", "padding": "x" * 4096}, format="json")
    assert response.status_code == 413
    assert response.json() == {
        "detail": "The request body is larger than the limit of 2048 bytes (MAX_REQUEST_BODY_BYTES)."
    }


def test_too_many_form_fields_is_a_400_naming_the_limit(writer, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    response = writer.post("/api/v1/schedule/", {f"field{n}": "1" for n in range(11)})
    assert response.status_code == 400
    assert response.json() == {"detail": "The request has more than 10 fields (MAX_REQUEST_FIELDS)."}


def test_list_filters_are_described_as_taking_an_empty_value_as_no_filter(client, reader):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/message/"]["get"]["parameters"]}
    assert parameters["lang"]["allowEmptyValue"] is True
    assert "allowEmptyValue" not in parameters["page_size"]  # an empty page size is a 400
    assert reader.get("/api/v1/message/", {"lang": ""}).status_code == 200
    assert reader.get("/api/v1/message/", {"page_size": ""}).status_code == 400


MALFORMED_MULTIPART = b"--edge\r\n[]--edge--\r\n"  # one part, without headers: no field name


@pytest.mark.parametrize("path", ["/api/v1/schedule/", "/api/v1/binarycontent/"])
def test_a_multipart_body_without_a_named_part_is_a_400(writer, path):
    response = writer.generic("POST", path, MALFORMED_MULTIPART, content_type="multipart/form-data; boundary=edge")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The multipart body has no part with a field name")


def test_an_empty_multipart_form_is_still_an_empty_form(writer):
    response = writer.generic(
        "POST", "/api/v1/schedule/", b"--edge--\r\n", content_type="multipart/form-data; boundary=edge"
    )
    assert response.status_code == 201  # every cron field defaults to *
