"""Exit 0 when the Redis at REDIS_URL answers; with --host-port, print its host and port."""

import os
import sys
from urllib.parse import urlsplit

import redis

url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
if "--host-port" in sys.argv:
    parts = urlsplit(url)
    print(parts.hostname or "127.0.0.1", parts.port or 6379)
    sys.exit(0)
try:
    redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
except redis.RedisError:
    sys.exit(1)
