"""One exception handler for the DRF views: domain errors become the face's 4xx/5xx."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerUnreachable
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .errors import AuthenticationError, ScopeDenied
from .redis import REDIS_ERRORS

logger = logging.getLogger(__name__)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service this request needs is unavailable; try again shortly."
    default_code = "service_unavailable"


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, RequestDataTooBig):  # Django's answer would be an HTML 400 without a word
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return RequestTooLarge(f"The request body is larger than the limit of {limit} bytes (MAX_REQUEST_BODY_BYTES).")
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return exceptions.ParseError(f"The request has more than {limit} fields (MAX_REQUEST_FIELDS).")
    if isinstance(exc, AuthenticationError):
        return exceptions.AuthenticationFailed(str(exc))
    if isinstance(exc, ScopeDenied):
        return exceptions.PermissionDenied(str(exc))
    if isinstance(exc, DjangoValidationError):
        if not hasattr(exc, "error_dict"):
            return exceptions.ValidationError({"non_field_errors": exc.messages})
        detail = {
            ("non_field_errors" if field == "__all__" else field): errors for field, errors in exc.message_dict.items()
        }
        return exceptions.ValidationError(detail)
    if isinstance(exc, DataError):  # a value the database cannot hold: bad input, not a fault
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "a value is out of range"
        return exceptions.ValidationError(
            {"non_field_errors": [f"The database refused a value of this request: {reason}."]}
        )
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("Database unavailable: %s", exc)
        return ServiceUnavailable("The database is unavailable; try again shortly.")
    if isinstance(exc, REDIS_ERRORS):
        logger.warning("Redis unavailable: %s", exc)
        return ServiceUnavailable("Redis is unavailable; try again shortly.")
    if isinstance(exc, BrokerUnreachable):  # queueing a task (Celery's broker, Redis) failed
        logger.warning("Task queue unavailable: %s", exc)
        return ServiceUnavailable("The task queue is unavailable; try again shortly.")
    return exc


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    response = exception_handler(_translate(exc), context)
    if response is None and isinstance(exc, DatabaseError):
        logger.exception("Database error", exc_info=exc)
    return response
