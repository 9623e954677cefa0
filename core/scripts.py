import hashlib

from redis.exceptions import NoScriptError


class RedisScript:
    """A Lua script run by its SHA (EVALSHA), loaded on first use after Redis starts."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts so

    async def run(self, client, keys: list, args: list):
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)

    def run_sync(self, client, keys: list, args: list):
        """`run` with a synchronous client."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)
