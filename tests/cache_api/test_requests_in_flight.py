"""What a web process's requests in flight cost the garbage collector: nothing, however many are in flight."""

import asyncio
import gc

import pytest
from asgiref.sync import async_to_sync

from config.asgi import application
from core.startup import YOUNG_GENERATION_THRESHOLD

IN_FLIGHT = 200


def burst(token: str, *, each: int = 5) -> tuple[list[int], list[int]]:
    """IN_FLIGHT clients reading a cache item at once through the whole application, `each` reads apiece: the
    statuses answered, and the generations the collector walked meanwhile (from a young generation just
    emptied)."""
    headers = [(b"host", b"testserver"), (b"authorization", token.encode())]

    async def read() -> int:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": "/cache/news", "raw_path": b"/cache/news", "query_string": b"key=k", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        }  # fmt: skip
        answer = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            answer.append(message)

        await application(scope, receive, send)
        return answer[0]["status"]

    async def client() -> list[int]:
        return [await read() for _ in range(each)]

    async def run() -> tuple[list[int], list[int]]:
        await client()  # the token and the cache looked up once, before the burst
        walked: list[int] = []

        def seen(phase: str, info: dict) -> None:
            if phase == "start":
                walked.append(info["generation"])

        gc.collect(0)
        gc.callbacks.append(seen)
        try:
            answers = await asyncio.gather(*(client() for _ in range(IN_FLIGHT)))
        finally:
            gc.callbacks.remove(seen)
        return [status for statuses in answers for status in statuses], walked

    return async_to_sync(run)()


@pytest.fixture
def default_threshold():
    """Python's own thresholds for the duration of a test."""
    settled = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*settled)


@pytest.mark.django_db(transaction=True)
def test_requests_in_flight_do_not_make_the_garbage_collector_run(news, make_token, cache_client):
    _, token = make_token()
    assert cache_client().put("/cache/news?key=k&ttl_seconds=60", content=b"v", headers={"Authorization": token})
    assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD  # as loading the application left it

    statuses, walked = burst(token)
    assert statuses == [200] * IN_FLIGHT * 5
    assert walked == []


@pytest.mark.django_db(transaction=True)
def test_at_pythons_default_threshold_the_same_requests_make_it_run_again_and_again(
    news, make_token, cache_client, default_threshold
):
    """What the test above guards against: the objects of 200 requests in flight pass 700, so the collector
    walks them every few requests, and moves them on to the older generations, whose walks take longer."""
    _, token = make_token()
    assert cache_client().put("/cache/news?key=k&ttl_seconds=60", content=b"v", headers={"Authorization": token})

    statuses, walked = burst(token, each=20)
    assert statuses == [200] * IN_FLIGHT * 20
    assert walked.count(0) > 10, walked
    assert 1 in walked, walked
