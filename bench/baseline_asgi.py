"""The baseline: a framework-free ASGI app doing the one Redis call a cache request needs."""

import os

import redis.asyncio

REDIS = redis.asyncio.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11"), max_connections=200)


async def app(scope, receive, send):
    key = b"baseline:" + scope["query_string"]
    if scope["method"] == "PUT":
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        await REDIS.set(key, body, ex=300)
        status, payload = 204, b""
    else:
        value = await REDIS.get(key)
        status, payload = (200, value) if value is not None else (404, b'{"message": "Key Not Found"}')
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"%d" % len(payload))]}
    )
    await send({"type": "http.response.body", "body": payload})
