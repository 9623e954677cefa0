"""A cache can be used as soon as its creation answered, in every web process, although a
request just before found it missing (a missing name is trusted only while no cache was created)."""

from io import StringIO

import httpx
import pytest
from django.core.management import call_command

from cache_api import services
from harness.processes import Process
from harness.waiting import free_port, wait_for_http
from tests.cache_api.conftest import CacheClient
from tests.core.test_security import procfile_web_command
from tests.processes import child_environment

CACHES_URL = "/api/v1/caches/"


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, tmp_path_factory):
    """The base URL of a web process of its own (its own lookups), with the test's database and Redis."""
    with django_db_blocker.unblock():
        environment = child_environment()
    port = free_port()
    server = Process("web", procfile_web_command(port), env=environment, log=tmp_path_factory.mktemp("web") / "log")
    server.start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/health/", status=None)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(grace=30)


def item(base: str, raw: str, cache: str) -> httpx.Response:
    return httpx.get(f"{base}/cache/{cache}", params={"key": "k"}, headers={"Authorization": raw}, timeout=30)


@pytest.mark.django_db(transaction=True)
def test_a_cache_created_elsewhere_is_found_by_a_web_process_that_found_it_missing(web, make_token):
    _, raw = make_token("cache:readwrite")
    assert item(web, raw, "news").json() == {"message": "Cache Not Found"}
    services.cache_create(name="news")  # in this process, as another web process would
    answer = item(web, raw, "news")
    assert (answer.status_code, answer.json()) == (404, {"message": "Key Not Found"})


@pytest.mark.django_db(transaction=True)
def test_a_cache_created_by_any_means_is_found_at_once(make_token, api, admin_client):
    _, raw = make_token("cache:readwrite")
    client = CacheClient(raw)
    for name, create in (
        ("news", lambda: api(raw).put(f"{CACHES_URL}news", {}, format="json")),
        ("ops", lambda: call_command("createcache", "ops", stdout=StringIO())),
        ("site", lambda: admin_client.post("/admin/cache_api/cache/add/", {"name": "site"})),
    ):
        assert client.get(f"/cache/{name}", params={"key": "k"}).json() == {"message": "Cache Not Found"}
        create()
        assert client.get(f"/cache/{name}", params={"key": "k"}).json() == {"message": "Key Not Found"}, name


@pytest.mark.django_db(transaction=True)
def test_a_missing_cache_asked_for_again_is_not_looked_up_in_the_database(make_token, django_assert_num_queries):
    _, raw = make_token("cache:readwrite")
    client = CacheClient(raw)
    assert client.get("/cache/nothing", params={"key": "k"}).status_code == 404
    with django_assert_num_queries(0):
        for _ in range(5):
            assert client.get("/cache/nothing", params={"key": "k"}).json() == {"message": "Cache Not Found"}
