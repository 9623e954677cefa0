import httpx
import pytest
from asgiref.sync import async_to_sync

from cache_api import services
from config.asgi import application


class CacheClient:
    """Talks HTTP to the whole ASGI application, as a client of the data API would."""

    def __init__(self, raw_token: str | None = None):
        self.raw_token = raw_token

    def request(self, method: str, path: str, *, header_token: bool = True, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        params = dict(kwargs.pop("params", {}))
        if self.raw_token is not None:
            if header_token:
                headers.setdefault("Authorization", self.raw_token)
            else:
                params.setdefault("token", self.raw_token)

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                if params:  # an empty dict would drop a query string written in the path
                    kwargs["params"] = params
                return await client.request(method, path, headers=headers, **kwargs)

        return async_to_sync(send)()

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def options(self, path, **kwargs):
        return self.request("OPTIONS", path, **kwargs)


@pytest.fixture
def news(db):
    """The cache `news`."""
    cache, _ = services.cache_create(name="news")
    return cache


@pytest.fixture
def cache_client(make_token):
    """cache_client(*scopes) -> a client holding a new token with those scopes (default all)."""

    def make(*scopes: str, **kwargs) -> CacheClient:
        _, raw = make_token(*scopes, **kwargs)
        return CacheClient(raw)

    return make


@pytest.fixture
def anonymous():
    return CacheClient()
