"""What every serving process checks before it starts."""

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
