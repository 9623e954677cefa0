"""The ASGI entry point: the web process serves everything through this.

The cache data path (`/cache/`) and topics (`/topics/`) are lean ASGI apps that
never enter Django's request handler (see DESIGN.md); Django serves the admin,
the REST APIs and the docs. In front of them all, RequestBounds refuses heads and
bodies past their limits before any of them reads a byte of the body.
"""

import json
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_asgi_application()  # sets Django up: import the lean apps after it

from core.startup import WEB_YOUNG_GENERATION_THRESHOLD, refuse_without_secrets, settle_garbage_collector  # noqa: E402

refuse_without_secrets()

from cache_api.asgi import cache_app  # noqa: E402
from core.asgi import PrefixRouter, RequestBounds, Scope  # noqa: E402
from topics.asgi import topics_app  # noqa: E402

# Everything loaded so far lives as long as the process: keep it out of the garbage
# collector's full passes, which otherwise walk it all and stall requests (p99); and let the
# young generation hold the requests in flight (core/startup.py).
settle_garbage_collector(young_threshold=WEB_YOUNG_GENERATION_THRESHOLD)

LEAN_PREFIXES = ("/cache/", "/topics/")
JOBS_PREFIXES = ("/jobs.json", "/jobs/")
JOBS_BATCH_PATH = "/jobs/batch.json"


def body_limit(scope: Scope) -> tuple[int, str]:
    """The largest body a request may carry, by face; and what a larger one is told."""
    path = scope["path"]
    if path.startswith("/topics/"):
        limit = settings.TOPICS_MAX_MESSAGE_BYTES
        return limit, f"The message is larger than the limit of {limit} bytes (TOPICS_MAX_MESSAGE_BYTES)."
    if path == JOBS_BATCH_PATH:
        limit = settings.JOBS_MAX_BATCH_BYTES
        return limit, f"The batch is larger than the limit of {limit} bytes (JOBS_MAX_BATCH_BYTES)."
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    if path.startswith("/cache/") or content_type.lower().startswith(b"multipart/form-data"):
        limit, name = settings.MAX_UPLOAD_BYTES, "MAX_UPLOAD_BYTES"  # a cache's own item limit is checked past it
    else:
        limit, name = settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "MAX_REQUEST_BODY_BYTES"
    return limit, f"The request body is larger than the limit of {limit} bytes ({name})."


def error_format(scope: Scope, status: int, message: str) -> tuple[bytes, str]:
    """A refusal in the face's own error format."""
    path = scope["path"]
    if path.startswith(LEAN_PREFIXES):
        body = {"message": message}
    elif path.startswith(JOBS_PREFIXES):
        body = {"error": {"headers" if status == 431 else "body": message}}
    else:
        body = {"detail": message}
    return json.dumps(body).encode(), "application/json"


application = RequestBounds(
    PrefixRouter({"/cache/": cache_app, "/topics/": topics_app}, default=django_application),
    body_limit=body_limit,
    error_format=error_format,
)
