"""The home page, the documents it links to, the admin's name, and the API docs grouped by face."""

import re

import pytest

SCHEMA = {"HTTP_ACCEPT": "application/vnd.oai.openapi+json"}


@pytest.fixture
def debug(settings):
    settings.DEBUG = True  # as `make run` serves: a missing page would be Django's DEBUG 404


def test_the_home_page_says_what_the_service_is_and_links_everywhere(client, debug, db):
    response = client.get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Stage-based messaging store" in page
    assert "Page not found" not in page
    links = set(re.findall(r'href="([^"]+)"', page))
    assert {"/admin/", "/api/docs/", "/api/health/", "/docs/jobs/", "/docs/content-store/"} <= links
    assert {"/docs/subscriptions/", "/docs/readme/", "/docs/topic-webhooks/"} <= links
    assert not [link for link in links if link.startswith(("http:", "https:", "//"))]  # nothing from elsewhere
    for link in sorted(links):
        assert client.get(link).status_code in (200, 302), link  # the admin redirects to its login


def test_a_document_is_shown_as_its_text_escaped(client):
    response = client.get("/docs/jobs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "# Delayed HTTP jobs" in page
    assert "<script>" not in client.get("/docs/readme/").content.decode()  # the README's example, escaped


def test_an_unknown_document_is_a_404(client):
    assert client.get("/docs/settings/").status_code == 404
    assert client.get("/docs/..%2Fconfig%2Fsettings/").status_code == 404


def test_the_admin_carries_the_services_name_and_links_home(admin_client, client):
    page = admin_client.get("/admin/").content.decode()
    assert "Stage-based messaging store" in page
    assert "Django administration" not in page
    assert 'href="/"' in page  # View site
    login = client.get("/admin/login/").content.decode()
    assert "<title>Log in | Stage-based messaging store</title>" in login


FACES = {
    "/api/v1/schedule/": "content",
    "/api/v1/messageset/{id}/messages/": "content",
    "/api/v1/binarycontent/": "content",
    "/api/v1/subscriptions/": "subscriptions",
    "/api/v1/subscriptions/request/": "subscriptions",
    "/api/v1/failed-tasks/": "subscriptions",
    "/api/v1/behind-subscriptions/": "subscriptions",
    "/api/metrics/": "subscriptions",
    "/api/v1/tokens/": "tokens",
    "/api/v1/user/token/": "tokens",
    "/api/v1/caches/": "caches",
    "/api/v1/caches/{name}/": "caches",
    "/cache/{cacheName}": "cache items",
    "/topics/{cacheName}/{topicName}": "topics",
    "/api/v1/caches/{cache}/webhooks/{name}/": "webhooks",
    "/jobs.json": "jobs",
    "/jobs/{job_id}.json": "jobs",
    "/jobs/batch.json": "jobs",
}


def test_the_api_docs_group_every_operation_by_face(client):
    schema = client.get("/api/schema/", **SCHEMA).json()
    described = {tag["name"]: tag["description"] for tag in schema["tags"]}
    assert list(described) == [
        "content",
        "subscriptions",
        "tokens",
        "caches",
        "cache items",
        "topics",
        "webhooks",
        "jobs",
    ]
    assert all(described.values())
    for path, face in FACES.items():
        operations = schema["paths"][path]
        assert {tuple(operation["tags"]) for operation in operations.values()} == {(face,)}, path
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert len(operation["tags"]) == 1 and operation["tags"][0] in described, (method, path)
