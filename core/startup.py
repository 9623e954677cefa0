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


# The collector's young-generation threshold in serving processes: well past the objects that the requests (or
# jobs) one process has in flight hold at once. At Python's default (700 objects), a web process with 200 requests
# in flight holds more than that all the time, so the collector walked them every few requests, collecting
# nothing, and promoted them into the older generations, whose collections then paused every request in flight.
# Garbage that only the collector can free (reference cycles) is rare on these paths: it waits for this many
# objects (a few MB) before it is collected.
YOUNG_GENERATION_THRESHOLD = 50_000


def settle_garbage_collector() -> None:
    """Keep what start-up loaded out of the collector's passes (it lives as long as the process), and let the
    young generation hold the work in flight (YOUNG_GENERATION_THRESHOLD)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
