import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from core import __version__

from .redis import get_redis

logger = logging.getLogger(__name__)


def _database_accessible() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception as error:  # any failure means "not accessible"
        logger.warning("Health: database not accessible: %s", error)
        return False


def _redis_accessible() -> bool:
    try:
        return bool(get_redis().ping())
    except Exception as error:
        logger.warning("Health: Redis not accessible: %s", error)
        return False


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Whether the service and what it needs are up; 503 naming the failing part."""
    parts = {"database": _database_accessible(), "redis": _redis_accessible()}
    up = all(parts.values())
    result = {name: "Accessible" if ok else "Not accessible" for name, ok in parts.items()}
    result["version"] = __version__
    return JsonResponse({"up": up, "result": result}, status=200 if up else 503)


@csrf_exempt  # it answers 404 to every method; a CSRF check would answer an HTML 403 first
def api_not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    return JsonResponse({"detail": f"No API endpoint at {request.path}."}, status=404)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused CSRF check: Django's page in the admin, JSON on the API faces."""
    if request.path.startswith("/admin/"):
        return csrf.csrf_failure(request, reason)
    return JsonResponse({"detail": f"CSRF verification failed: {reason}"}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    """500 without internals (JSON under /api/); the traceback goes to the log only."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)
