"""What every serving process checks, and settles, before it starts."""

import gc

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

HOW_TO_SET = {
    "SECRET_KEY": (
        "SECRET_KEY is not set. Set SECRET_KEY to a long random string "
        '(python -c "import secrets; print(secrets.token_urlsafe(50))"), or set DEBUG=true for local development.'
    ),
    "JOBS_SIGNING_KEY": (
        "JOBS_SIGNING_KEY is not set. Set it to a long random string (it encrypts job owners' signing secrets) "
        '(python -c "import secrets; print(secrets.token_urlsafe(32))"), or set DEBUG=true for local development.'
    ),
}


def secrets_problem() -> str | None:
    """What is missing for the service to start with DEBUG off, or None."""
    missing = settings.MISSING_SECRETS
    return " ".join(HOW_TO_SET[name] for name in missing) if missing else None


def refuse_without_secrets() -> None:
    """Stop a serving process (web, worker, scheduler, dispatcher) that lacks its secrets."""
    problem = secrets_problem()
    if problem:
        raise ImproperlyConfigured(problem)


# The collector's young-generation threshold in Celery workers: well past the objects the deliveries one worker
# has in flight hold at once. At Python's default (700 objects), a worker with hundreds of deliveries in flight
# holds more than that all the time, so the collector walked them every few deliveries, collecting nothing, and
# promoted them into the older generations, whose collections then took longer. Garbage that only the collector
# frees (reference cycles) is rare there, and waits for this many objects (a few MB).
WORKER_YOUNG_GENERATION_THRESHOLD = 50_000
# In web processes, lower. The lean paths' requests in flight (hundreds of cache requests waiting for Redis) pass
# Python's 700 all the time too: the collector walked them every few requests, 6-7% of a cache request's CPU at 200
# in flight, with pauses of 5-10 ms. A request Django serves is reference cycles (the REST framework's request,
# view, response and serializer; Django's lazy user), which only the collector frees: what it read and parsed is
# let go of when its response is ready (core/request_memory.py), so what waits for the collector is a few hundred
# small objects a request. 450 refused 2 MB uploads: 115 to 117 MB at this threshold, 118 MB at Python's.
WEB_YOUNG_GENERATION_THRESHOLD = 10_000


def settle_garbage_collector(*, young_threshold: int | None = None) -> None:
    """Keep what start-up loaded out of the collector's passes (it lives as long as the process); with
    `young_threshold`, let the young generation hold that many objects (the work in flight) before it is walked."""
    gc.freeze()
    if young_threshold is not None:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)
