import base64
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from cache_api.keys import item_key
from core.redis import get_redis

pytestmark = pytest.mark.django_db

URL = "/cache/news"


def message(response) -> str:
    return response.json()["message"]


# --- The reference's own examples -------------------------------------------


def test_the_reference_put_and_get_with_the_token_in_the_query(news, cache_client):
    client = cache_client("cache:readwrite")
    put = client.put(
        URL, params={"key": "example_key", "ttl_seconds": "300"}, content=b"example value", header_token=False
    )
    assert put.status_code == 204
    assert put.content == b""
    got = client.get(URL, params={"key": "example_key"}, header_token=False)
    assert got.status_code == 200
    assert got.content == b"example value"
    assert got.headers["content-type"] == "application/octet-stream"


def test_the_reference_base64_key_with_the_token_in_the_header(news, cache_client):
    client = cache_client("cache:readwrite")
    assert (
        client.put(URL, params={"key_base64": "ZXhhbXBsZV9rZXk", "ttl_seconds": "300"}, content=b"v").status_code == 204
    )
    assert client.get(URL, params={"key": "example_key"}).content == b"v"
    assert client.delete(URL, params={"key_base64": "ZXhhbXBsZV9rZXk"}).status_code == 204
    response = client.get(URL, params={"key": "example_key"})
    assert response.status_code == 404
    assert message(response) == "Key Not Found"


@pytest.mark.parametrize("header", ["{raw}", "Token {raw}", "Bearer {raw}"])
def test_every_authorization_header_form_works(news, make_token, header):
    from tests.cache_api.conftest import CacheClient

    _, raw = make_token("cache:readwrite")
    client = CacheClient()
    response = client.put(
        URL, params={"key": "k", "ttl_seconds": "5"}, content=b"v", headers={"Authorization": header.format(raw=raw)}
    )
    assert response.status_code == 204


# --- Keys and values -----------------------------------------------------------


def test_base64_keys_with_and_without_padding_are_the_same_item(news, cache_client):
    client = cache_client()
    key = b"\x00\xffbinary key\n"
    padded = base64.urlsafe_b64encode(key).decode()
    assert padded.endswith("=")
    client.put(URL, params={"key_base64": padded, "ttl_seconds": "60"}, content=b"one")
    assert client.get(URL, params={"key_base64": padded.rstrip("=")}).content == b"one"
    assert get_redis().get(item_key(news.pk, key)) == b"one"


def test_a_percent_encoded_key_keeps_every_byte(news, cache_client):
    client = cache_client()
    client.put(URL + "?key=a%00b%FF&ttl_seconds=60", content=b"bytes")
    assert get_redis().get(item_key(news.pk, b"a\x00b\xff")) == b"bytes"
    assert client.get(URL, params={"key_base64": base64.urlsafe_b64encode(b"a\x00b\xff").decode()}).content == b"bytes"


def test_binary_values_round_trip_byte_for_byte(news, cache_client):
    client = cache_client()
    value = bytes(range(256)) * 4 + b"\x00\x00"
    client.put(URL, params={"key": "blob", "ttl_seconds": "60"}, content=value)
    assert client.get(URL, params={"key": "blob"}).content == value


def test_an_item_of_exactly_the_size_limit_round_trips(news, cache_client, settings):
    client = cache_client()
    limit = settings.CACHE_MAX_ITEM_BYTES
    value = (b"\x00\x01\xfe\xff" * (limit // 4 + 1))[: limit - 1]  # 5 MB - 1 byte, plus a 1-byte key
    assert client.put(URL, params={"key": "k", "ttl_seconds": "60"}, content=value).status_code == 204
    assert client.get(URL, params={"key": "k"}).content == value


def test_an_item_over_the_size_limit_is_refused_naming_the_limit(news, cache_client, settings):
    client = cache_client()
    limit = settings.CACHE_MAX_ITEM_BYTES
    response = client.put(URL, params={"key": "kk", "ttl_seconds": "60"}, content=b"x" * (limit - 1))
    assert response.status_code == 400
    assert message(response) == f"The item (key + value) is larger than the limit of {limit} bytes."
    assert get_redis().get(item_key(news.pk, b"kk")) is None


def test_a_cache_may_have_its_own_limits(db, cache_client):
    from cache_api import services

    services.cache_create(name="small", max_item_bytes=10, max_ttl_seconds=60)
    client = cache_client()
    assert client.put("/cache/small", params={"key": "k", "ttl_seconds": "60"}, content=b"123456789").status_code == 204
    too_big = client.put("/cache/small", params={"key": "k", "ttl_seconds": "60"}, content=b"1234567890")
    assert message(too_big) == "The item (key + value) is larger than the limit of 10 bytes."
    too_long = client.put("/cache/small", params={"key": "k", "ttl_seconds": "61"}, content=b"1")
    assert message(too_long) == "ttl_seconds may be at most 60 (the cache's TTL limit)."


def test_the_ttl_is_set_on_the_item(news, cache_client):
    cache_client().put(URL, params={"key": "k", "ttl_seconds": "300"}, content=b"v")
    ttl = get_redis().ttl(item_key(news.pk, b"k"))
    assert 295 <= ttl <= 300


def test_an_expired_item_is_a_miss(news, cache_client):
    client = cache_client()
    client.put(URL, params={"key": "k", "ttl_seconds": "300"}, content=b"v")
    redis_key = item_key(news.pk, b"k")
    get_redis().pexpire(redis_key, 1)  # bring its expiry forward to now
    for _ in range(200):  # Redis expires it within a few milliseconds
        if not get_redis().exists(redis_key):
            break
        time.sleep(0.01)
    response = client.get(URL, params={"key": "k"})
    assert response.status_code == 404
    assert message(response) == "Key Not Found"


def test_deleting_a_missing_key_is_fine(news, cache_client):
    assert cache_client().delete(URL, params={"key": "never-set"}).status_code == 204


# --- Malformed requests ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "query", "text"),
    [
        ("GET", "key=a&key_base64=YQ", "Pass either key or key_base64, not both."),
        ("GET", "", "Missing key: pass the key or key_base64 query parameter."),
        ("GET", "key=", "The key must not be empty."),
        ("GET", "key_base64=", "The key must not be empty."),
        ("GET", "key_base64=a%2Bb", "key_base64 must be base64url (A-Z, a-z, 0-9, '-' and '_'; padding optional)."),
        ("GET", "key_base64=abcde", "key_base64 must be base64url (A-Z, a-z, 0-9, '-' and '_'; padding optional)."),
        ("PUT", "key=a", "Missing ttl_seconds: it is required to set a value."),
        ("PUT", "key=a&ttl_seconds=soon", "ttl_seconds must be a whole number of seconds, not 'soon'."),
        ("PUT", "key=a&ttl_seconds=1.5", "ttl_seconds must be a whole number of seconds, not '1.5'."),
        ("PUT", "key=a&ttl_seconds=0", "ttl_seconds must be greater than 0."),
        ("PUT", "key=a&ttl_seconds=-5", "ttl_seconds must be greater than 0."),
        ("PUT", "key=a&ttl_seconds=86401", "ttl_seconds may be at most 86400 (the cache's TTL limit)."),
        ("DELETE", "", "Missing key: pass the key or key_base64 query parameter."),
    ],
)
def test_a_malformed_request_is_a_400_saying_what_is_wrong(news, cache_client, method, query, text):
    response = cache_client().request(method, f"{URL}?{query}", content=b"v" if method == "PUT" else None)
    assert response.status_code == 400
    assert response.json() == {"message": text}


@pytest.mark.parametrize("ttl", ["%C2%B2", "%D9%A1%D9%A2", "1_0", "%EF%BC%91", "99999999999999999999999"])
def test_a_ttl_of_anything_but_ascii_digits_is_a_400_naming_it(news, cache_client, ttl):
    response = cache_client().put(f"{URL}?key=a&ttl_seconds={ttl}", content=b"v")
    assert response.status_code == 400
    assert message(response).startswith("ttl_seconds must be a whole number of seconds")


BAD_NAMES = ["ne%00ws", "news%0A", "news%00%0A", "news%0D%0AINFO%20forged", "n%C3%A9ws", "news%FF", "ne%2Fws",
             "-news", "news%20", "%E2%80%A8news", "n" * 65]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_cache_name_outside_the_rule_is_a_400_on_every_method(news, cache_client, name):
    from cache_api.models import NAME_RULE

    client = cache_client()
    for method in ("GET", "PUT", "DELETE", "POST", "OPTIONS"):
        response = client.request(method, f"/cache/{name}?key=a&ttl_seconds=5", content=b"v")
        assert (method, response.status_code, response.json()) == (method, 400, {"message": NAME_RULE})


def test_a_cache_name_is_checked_before_the_token(news, anonymous):
    response = anonymous.get("/cache/ne%00ws", params={"key": "a"})
    assert response.status_code == 400


def test_a_token_in_both_places_is_a_400(news, cache_client, make_token):
    client = cache_client()
    response = client.get(URL, params={"key": "k", "token": client.raw_token})
    assert response.status_code == 400
    assert "not both" in message(response)


def test_other_methods_are_not_allowed(news, cache_client):
    response = cache_client().request("POST", URL, params={"key": "k"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT, DELETE, OPTIONS"


def test_paths_below_a_cache_name_are_not_found(news, cache_client):
    response = cache_client().get(URL + "/extra", params={"key": "k"})
    assert response.status_code == 404
    assert message(response).startswith("Not Found")


# --- Not found -------------------------------------------------------------------


def test_an_unknown_cache_is_cache_not_found(db, cache_client):
    client = cache_client()
    for response in (
        client.get("/cache/nope", params={"key": "k"}),
        client.put("/cache/nope", params={"key": "k", "ttl_seconds": "5"}, content=b"v"),
        client.delete("/cache/nope", params={"key": "k"}),
    ):
        assert response.status_code == 404
        assert message(response) == "Cache Not Found"


# --- Authentication and scopes -------------------------------------------------------


def test_no_token_is_a_401(news, anonymous):
    response = anonymous.get(URL, params={"key": "k"})
    assert response.status_code == 401
    assert message(response) == "Missing token: pass it as the token query parameter or as the Authorization header."


def test_unknown_expired_and_revoked_tokens_are_401s(news, make_token):
    from accounts.services import token_revoke
    from tests.cache_api.conftest import CacheClient

    assert message(CacheClient("0" * 40).get(URL, params={"key": "k"})) == "Invalid token."
    _, expired = make_token(expires_at=timezone.now() - timedelta(seconds=1))
    assert message(CacheClient(expired).get(URL, params={"key": "k"})) == "Token has expired."
    token, revoked = make_token()
    token_revoke(token=token)
    response = CacheClient(revoked).get(URL, params={"key": "k"})
    assert response.status_code == 401
    assert message(response) == "Token has been revoked."


@pytest.mark.parametrize(
    ("scope", "get", "put", "delete"),
    [
        ("cache:readwrite", 404, 204, 204),
        ("cache:readonly", 404, 403, 403),
        ("cache:writeonly", 403, 204, 204),
        ("cache:readwrite:news", 404, 204, 204),
        ("cache:readwrite:other", 403, 403, 403),
        ("cache:readwrite:news:key=k", 404, 204, 204),
        ("cache:readwrite:news:key=other", 403, 403, 403),
        ("cache:readwrite:news:key_prefix=k", 404, 204, 204),
        ("cache:readwrite:news:key_prefix=user-", 403, 403, 403),
        ("topics:publishsubscribe", 403, 403, 403),
        ("messaging:write", 403, 403, 403),
    ],
)
def test_every_scope_allows_what_it_says_and_no_more(news, cache_client, scope, get, put, delete):
    client = cache_client(scope)
    assert client.get(URL, params={"key": "k"}).status_code == get
    assert client.put(URL, params={"key": "k", "ttl_seconds": "5"}, content=b"v").status_code == put
    assert client.delete(URL, params={"key": "k"}).status_code == delete


def test_a_403_names_what_is_missing(news, cache_client):
    response = cache_client("cache:readonly:news").put(URL, params={"key": "k", "ttl_seconds": "5"}, content=b"v")
    assert response.status_code == 403
    assert message(response) == (
        "This token does not allow cache write cache 'news' key 'k': "
        "it needs a cache scope with role readwrite or writeonly covering it."
    )


def test_scope_is_checked_before_the_cache_is_looked_up(db, cache_client):
    response = cache_client("cache:readwrite:news").get("/cache/secret", params={"key": "k"})
    assert response.status_code == 403


def test_a_minted_token_for_one_key_prefix_works_from_a_browser(news, make_token, api):
    from tests.cache_api.conftest import CacheClient

    _, raw = make_token("tokens:mint", "cache:readwrite")
    minted = api(raw).post(
        "/api/v1/tokens/", {"scopes": ["cache:readwrite:news:key_prefix=user-42-"], "expires_in": 60}, format="json"
    )
    browser = CacheClient(minted.json()["authToken"])
    assert browser.put(URL, params={"key": "user-42-cart", "ttl_seconds": "60"}, content=b"[]").status_code == 204
    assert browser.get(URL, params={"key": "user-42-cart"}).content == b"[]"
    assert browser.get(URL, params={"key": "user-43-cart"}).status_code == 403


# --- Rate limits ------------------------------------------------------------------------


def first_refused(send, *, attempts: int = 20):
    """The first of up to `attempts` answers of `send()` in a row that is a 429, or None. The limits count
    per second, so a few more requests than the limit in a row always put more than it into one second."""
    return next((response for response in (send() for _ in range(attempts)) if response.status_code == 429), None)


def test_requests_past_the_rate_limit_get_429_with_retry_after(news, cache_client, settings):
    settings.CACHE_RATE_LIMIT_REQUESTS = 3
    client = cache_client()
    refused = first_refused(lambda: client.get(URL, params={"key": "k"}))
    assert refused is not None
    assert refused.headers["retry-after"] == "1"
    assert message(refused) == (
        "Too many requests: a user's tokens may make 3 requests per second together (CACHE_RATE_LIMIT_REQUESTS)."
    )


def test_the_rate_limit_is_per_user(news, cache_client, settings):
    settings.CACHE_RATE_LIMIT_REQUESTS = 1
    first, second = cache_client(), cache_client()
    assert first.get(URL, params={"key": "k"}).status_code == 404
    assert second.get(URL, params={"key": "k"}).status_code == 404


def test_a_users_tokens_share_one_budget_minted_ones_too(news, make_token, api, settings):
    from tests.cache_api.conftest import CacheClient

    settings.CACHE_RATE_LIMIT_REQUESTS = 3
    parent, raw = make_token("tokens:mint", "cache:readwrite")
    minted = [
        api(raw).post("/api/v1/tokens/", {"scopes": ["cache:readwrite"], "expires_in": 60}, format="json")
        for _ in range(2)
    ]
    _, sibling = make_token("cache:readwrite", user=parent.user)
    clients = [CacheClient(raw), CacheClient(sibling), *(CacheClient(m.json()["authToken"]) for m in minted)]
    # Three requests per token, within each token's own share; twelve for the user, over its 3 a second.
    statuses = [client.get(URL, params={"key": "k"}).status_code for _ in range(3) for client in clients]
    assert 429 in statuses, statuses


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_every_method_counts(news, cache_client, settings, method):
    settings.CACHE_RATE_LIMIT_REQUESTS = 2
    client = cache_client()
    statuses = [client.request(method, f"{URL}?key=k&ttl_seconds=5", content=b"v").status_code for _ in range(6)]
    assert statuses.count(429) >= 2, statuses


def test_bytes_past_the_throughput_limit_get_429_naming_it(news, cache_client, settings):
    settings.CACHE_RATE_LIMIT_BYTES = 100
    client = cache_client()
    responses = [client.put(URL, params={"key": "k", "ttl_seconds": "5"}, content=b"x" * 60) for _ in range(3)]
    refused = [r for r in responses if r.status_code == 429]
    assert refused, [r.status_code for r in responses]
    assert message(refused[0]) == (
        "Too much data: a user's tokens may move 100 bytes per second together (CACHE_RATE_LIMIT_BYTES)."
    )


# --- CORS ---------------------------------------------------------------------------------


def test_a_cors_preflight_is_answered(news, anonymous, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.org"]
    response = anonymous.options(
        URL,
        headers={
            "Origin": "https://app.example.org",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://app.example.org"
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert "Authorization" in response.headers["access-control-allow-headers"]


def test_responses_carry_cors_headers_for_allowed_origins_only(news, cache_client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.org"]
    client = cache_client()
    allowed = client.get(URL, params={"key": "k"}, headers={"Origin": "https://app.example.org"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
    other = client.get(URL, params={"key": "k"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_any_origin_by_default(news, cache_client):
    response = cache_client().get(URL, params={"key": "k"}, headers={"Origin": "https://anywhere.example"})
    assert response.headers["access-control-allow-origin"] == "*"


# --- Faults ---------------------------------------------------------------------------------


def test_redis_down_is_a_503_without_a_traceback(news, cache_client, settings):
    client = cache_client()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get(URL, params={"key": "k"})
    assert response.status_code == 503
    assert response.json() == {"message": "The cache is unavailable: Redis cannot be reached. Try again shortly."}
