import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cache_api import services
from cache_api.keys import item_key, topic_key
from cache_api.models import Cache
from core.redis import get_redis

CACHES_URL = "/api/v1/caches/"


@pytest.mark.django_db
class TestCacheControl:
    def test_put_creates_a_cache_then_says_it_exists(self, make_token, api):
        _, raw = make_token("cache:readwrite")
        created = api(raw).put(f"{CACHES_URL}news", {}, format="json")
        assert created.status_code == 201
        assert created.json()["name"] == "news"
        again = api(raw).put(f"{CACHES_URL}news", {}, format="json")
        assert again.status_code == 204
        assert Cache.objects.filter(name="news").count() == 1

    def test_put_may_set_the_cache_limits(self, make_token, api):
        _, raw = make_token("cache:readwrite")
        response = api(raw).put(f"{CACHES_URL}small/", {"max_item_bytes": 1024, "max_ttl_seconds": 60}, format="json")
        assert response.status_code == 201
        assert (response.json()["max_item_bytes"], response.json()["max_ttl_seconds"]) == (1024, 60)
        bad = api(raw).put(f"{CACHES_URL}other", {"max_item_bytes": 0}, format="json")
        assert bad.status_code == 400
        assert bad.json() == {"max_item_bytes": ["Ensure this value is greater than or equal to 1."]}

    @pytest.mark.parametrize("name", ["-starts-with-dash", "has space", "ü", "x" * 65])
    def test_a_bad_name_is_a_400_naming_the_rule(self, make_token, api, name):
        _, raw = make_token("cache:readwrite")
        response = api(raw).put(f"{CACHES_URL}{name}", {}, format="json")
        assert response.status_code == 400
        assert response.json() == {
            "name": [
                "A cache name is 1 to 64 characters: letters, digits, '-', '_' and '.', "
                "starting with a letter or digit."
            ]
        }

    def test_the_list_shows_the_caches_a_token_may_use(self, make_token, api):
        for name in ("alpha", "beta", "gamma"):
            services.cache_create(name=name)
        _, everything = make_token("cache:readonly")
        assert [c["name"] for c in api(everything).get(CACHES_URL).json()] == ["alpha", "beta", "gamma"]
        _, one = make_token("cache:readonly:beta:key_prefix=x", "topics:subscribeonly:gamma")
        assert [c["name"] for c in api(one).get(CACHES_URL).json()] == ["beta", "gamma"]

    def test_creating_or_deleting_needs_readwrite_over_the_whole_cache(self, make_token, api):
        services.cache_create(name="news")
        for scope in ("cache:readonly", "cache:readwrite:news:key_prefix=a", "cache:readwrite:other", "jobs:readwrite"):
            _, raw = make_token(scope)
            assert api(raw).put(f"{CACHES_URL}fresh", {}, format="json").status_code == 403, scope
            response = api(raw).delete(f"{CACHES_URL}news")
            assert response.status_code == 403, scope
        assert "needs a cache:readwrite scope covering all of it" in response.json()["detail"]
        _, scoped = make_token("cache:readwrite:news")
        assert api(scoped).delete(f"{CACHES_URL}news").status_code == 204

    def test_deleting_an_unknown_cache_is_a_404(self, make_token, api):
        _, raw = make_token("cache:readwrite")
        response = api(raw).delete(f"{CACHES_URL}nope")
        assert response.status_code == 404
        assert response.json() == {"detail": "Cache Not Found"}

    def test_no_token_is_a_401(self, api):
        assert api().get(CACHES_URL).status_code == 401

    def test_createcache_makes_a_cache_once(self):
        out = StringIO()
        call_command("createcache", "news", "--max-ttl-seconds", "60", stdout=out)
        call_command("createcache", "news", stdout=out)
        assert out.getvalue().splitlines() == ["Created cache news.", "Cache news exists."]
        assert Cache.objects.get(name="news").max_ttl_seconds == 60

    @pytest.mark.parametrize(
        ("args", "text"), [(["bad name"], "A cache name is"), (["ok", "--max-item-bytes", "0"], "must be a positive")]
    )
    def test_createcache_refuses_bad_input(self, args, text):
        with pytest.raises(CommandError, match=text):
            call_command("createcache", *args, stdout=StringIO())

    def test_the_admin_deletes_a_cache_through_the_service(
        self, client, admin_user, django_capture_on_commit_callbacks
    ):
        cache, _ = services.cache_create(name="news")
        client.force_login(admin_user)
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(f"/admin/cache_api/cache/{cache.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        assert not Cache.objects.exists()
        assert len(callbacks) == 1  # the purge of its items is queued

    def test_the_schema_describes_the_data_api(self, client):
        schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
        operations = schema["paths"]["/cache/{cacheName}"]
        assert set(operations) == {"get", "put", "delete"}
        assert {p["name"] for p in operations["put"]["parameters"]} >= {"key", "key_base64", "ttl_seconds"}
        # the token comes in the header or the query string: alternatives, not two parameters
        assert operations["put"]["security"] == [{"tokenAuth": []}, {"tokenQuery": []}]
        assert schema["components"]["securitySchemes"]["tokenQuery"] == {
            "type": "apiKey",
            "in": "query",
            "name": "token",
            "description": "The token as a query parameter, for clients that cannot set headers (not with the header).",
        }
        assert "/api/v1/caches/{name}/" in schema["paths"]


@pytest.mark.django_db(transaction=True)
def test_deleting_a_cache_removes_its_items_from_redis(make_token, api, celery_worker):
    from tests.cache_api.conftest import CacheClient

    _, raw = make_token("cache:readwrite")
    api(raw).put(f"{CACHES_URL}news", {}, format="json")
    api(raw).put(f"{CACHES_URL}kept", {}, format="json")
    news, kept = Cache.objects.get(name="news"), Cache.objects.get(name="kept")
    client = CacheClient(raw)
    for number in range(2500):
        get_redis().set(item_key(news.pk, b"k%d" % number), b"v", ex=60)
    client.put("/cache/kept", params={"key": "k", "ttl_seconds": "60"}, content=b"stays")
    get_redis().xadd(topic_key(news.pk, "room"), {"k": "t", "v": "hello", "t": "0"}, id="1-0")

    assert api(raw).delete(f"{CACHES_URL}news").status_code == 204

    def purged() -> bool:  # the worker purges in the background: the items, then the topics
        items = any(get_redis().scan_iter(match=b"cache:%d:*" % news.pk, count=1000))
        return not items and not get_redis().exists(topic_key(news.pk, "room"))

    for _ in range(300):
        if purged():
            break
        time.sleep(0.02)
    assert not list(get_redis().scan_iter(match=b"cache:%d:*" % news.pk, count=1000))
    assert not get_redis().exists(topic_key(news.pk, "room"))
    assert get_redis().get(item_key(kept.pk, b"k")) == b"stays"
    response = client.get("/cache/news", params={"key": "k1"})
    assert response.status_code == 404
    assert response.json() == {"message": "Cache Not Found"}


@pytest.mark.django_db(transaction=True)
def test_a_cache_created_again_does_not_see_the_old_items(make_token, api):
    from tests.cache_api.conftest import CacheClient

    _, raw = make_token("cache:readwrite")
    client = CacheClient(raw)
    api(raw).put(f"{CACHES_URL}news", {}, format="json")
    client.put("/cache/news", params={"key": "k", "ttl_seconds": "60"}, content=b"old")
    services.cache_delete(cache=Cache.objects.get(name="news"))
    api(raw).put(f"{CACHES_URL}news", {}, format="json")
    from cache_api.selectors import forget_known_caches

    forget_known_caches()  # as if CACHE_LOOKUP_SECONDS had passed
    assert client.get("/cache/news", params={"key": "k"}).status_code == 404


@pytest.mark.django_db
class TestWhoMayCreateAndDelete:
    def test_a_cache_records_who_created_it(self, make_token, api, admin_client, admin_user):
        token, raw = make_token("cache:readwrite")
        assert api(raw).put(f"{CACHES_URL}news", {}, format="json").status_code == 201
        assert Cache.objects.get(name="news").created_by == token.user
        call_command("createcache", "ops", stdout=StringIO())
        assert Cache.objects.get(name="ops").created_by is None
        admin_client.post("/admin/cache_api/cache/add/", {"name": "site", "max_item_bytes": "", "max_ttl_seconds": ""})
        assert Cache.objects.get(name="site").created_by == admin_user

    def test_deleting_a_cache_needs_a_grant_that_covers_it_now(self, make_token, api):
        for name in ("mine", "theirs"):
            services.cache_create(name=name)
        token, raw = make_token("cache:readwrite")
        token.user.grants = ["cache:readwrite:mine", "cache:readonly"]
        token.user.save()
        response = api(raw).delete(f"{CACHES_URL}theirs")
        assert response.status_code == 403
        assert "needs a cache:readwrite scope covering all of it" in response.json()["detail"]
        assert api(raw).put(f"{CACHES_URL}fresh", {}, format="json").status_code == 403
        assert api(raw).delete(f"{CACHES_URL}mine").status_code == 204
        assert list(Cache.objects.values_list("name", flat=True)) == ["theirs"]
