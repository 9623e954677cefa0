import logging
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
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


# The documents the home page links to, by name: the README and the files of docs/, shown as they are.
DOCUMENTS = {"readme": settings.BASE_DIR / "README.md"} | {
    path.stem: path for path in sorted((settings.BASE_DIR / "docs").glob("*.md"))
}


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """What the service is and where to go from here: the admin, the API docs, health, each face's docs."""
    return render(request, "core/home.html", {"title": settings.SERVICE_NAME, "version": __version__})


@require_GET
def document(request: HttpRequest, name: str) -> HttpResponse:
    """One of DOCUMENTS as text in a page of the service's own (it serves no assets from elsewhere)."""
    path: Path | None = DOCUMENTS.get(name)
    if path is None or not path.is_file():
        raise Http404(f"No document {name}.")
    return render(
        request,
        "core/document.html",
        {"title": settings.SERVICE_NAME, "name": path.name, "text": path.read_text(encoding="utf-8")},
    )


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
