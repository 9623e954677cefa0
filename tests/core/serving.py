"""Requests to the whole ASGI application, served as a server serves them."""

import asyncio
import threading
from collections.abc import Awaitable, Callable

import httpx

from config.asgi import application


def serve(requests: Callable[[httpx.AsyncClient], Awaitable[list[int]]]) -> list[int]:
    """Run `requests` (an async function of a client, answering the statuses) on an event loop of its own, as a
    server's: not one that async_to_sync lends this thread to. The statuses."""
    statuses: list[int] = []

    async def run() -> None:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            statuses.extend(await requests(client))

    server = threading.Thread(target=lambda: asyncio.run(run()))
    server.start()
    server.join(timeout=60)
    return statuses
