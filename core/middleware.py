"""The project's Django middleware around each response: the request metrics, and the base they share with
`core.request_memory`.

Counts every request Django answers in the metrics (core/metrics.py), as the lean apps count theirs.
The face is the app whose view answered (jobs, messaging, tokens, cache management);
the operation is the URL pattern's name, so the label values stay few whatever the
paths hold. A request no pattern matched is operation `unmatched`.
"""

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from . import metrics

# The face of each app's views; any other (admin, API docs, health) is `other`.
FACES = {
    "jobs": "jobs",
    "cache_api": "cache",
    "topics": "topics",
    "subscriptions": "messaging",
    "contentstore": "messaging",
    "webhooks": "messaging",
    "accounts": "tokens",
}


def _labels(request) -> tuple[str, str]:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "other", "unmatched"
    face = FACES.get(match.func.__module__.partition(".")[0], "other")
    return face, match.url_name or match.view_name or "unnamed"


class ResponseMiddleware:
    """A middleware that sees each response as it comes back (rendered), served sync or async alike:
    `answered(request, response, started)`, `started` the `time.perf_counter()` when the request reached it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self.answered(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        self.answered(request, response, started)
        return response

    def answered(self, request, response, started: float) -> None:
        raise NotImplementedError


class RequestMetricsMiddleware(ResponseMiddleware):
    """Counts each request by face, operation, method and status, and its duration."""

    def answered(self, request, response, started: float) -> None:
        face, operation = _labels(request)
        metrics.request_observed(face, operation, request.method, response.status_code, time.perf_counter() - started)
