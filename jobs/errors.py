"""The jobs face's errors: `{"error": {"<parameter>": "<message>"}}` for every 4xx (and 503).

A batch whose jobs are wrong says so by position as well: `"error"` names each parameter
`jobs[<index>][<parameter>]`, and `"errors"` lists `{"index": i, "error": {...}}` for each job
that is wrong, its `"error"` what a single create of that job would have answered.
"""

from __future__ import annotations

from rest_framework import exceptions, status
from rest_framework.response import Response

from core.exceptions import api_exception_handler


class JobsError(exceptions.APIException):
    """An error about one parameter."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, parameter: str, message: str):
        super().__init__({parameter: message})
        self.parameter = parameter
        self.message = message

    def __str__(self) -> str:
        return f"{self.parameter}: {self.message}"


class JobParameterError(JobsError):
    status_code = status.HTTP_400_BAD_REQUEST


class JobParameterErrorAt(JobParameterError):
    """A JobParameterError about some of the jobs created at once: `positions`, their indexes
    among them (in order). A single create answers it as any JobParameterError."""

    def __init__(self, parameter: str, message: str, positions: list[int]):
        super().__init__(parameter, message)
        self.positions = positions


class JobNotFound(JobsError):
    status_code = status.HTTP_404_NOT_FOUND


class JobConflict(JobsError):
    status_code = status.HTTP_409_CONFLICT


class JobBatchInvalid(exceptions.APIException):
    """Jobs of a batch that are wrong: their errors (parameter to message) by position."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, errors: dict[int, dict[str, str]]):
        self.errors = dict(sorted(errors.items()))
        flat = {
            f"jobs[{index}][{name}]": message for index, error in self.errors.items() for name, message in error.items()
        }
        super().__init__(flat)


MISSING_KEY = (
    "No API key was given: pass it as the apikey parameter (query, form field or JSON body) "
    "or as 'Authorization: Token <key>'."
)

# The parameter a plain (`{"detail": ...}`) error is about, by status.
PARAMETER_BY_STATUS = {
    status.HTTP_401_UNAUTHORIZED: "apikey",
    status.HTTP_403_FORBIDDEN: "apikey",
    status.HTTP_404_NOT_FOUND: "id",
    status.HTTP_405_METHOD_NOT_ALLOWED: "_method",
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: "body",
    status.HTTP_406_NOT_ACCEPTABLE: "format",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "body",
}


def _message(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_message(item) for item in value)
    return str(value)


def _flatten(detail: dict, prefix: str = "") -> dict[str, str]:
    """{"headers": {"X-A": ["bad"]}} -> {"headers[X-A]": "bad"}."""
    flat: dict[str, str] = {}
    for key, value in detail.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        elif key == "non_field_errors":
            flat[prefix or "job"] = _message(value)
        else:
            flat[name] = _message(value)
    return flat


def parameter_errors(exc: exceptions.APIException) -> dict[str, str]:
    """What the jobs face answers for `exc` as `{"<parameter>": "<message>"}`: a job's parameter
    errors (a JobsError, or a serializer's ValidationError)."""
    if isinstance(exc, JobsError):
        return {exc.parameter: exc.message}
    if isinstance(exc.detail, dict):
        return _flatten(exc.detail)
    return {"job": _message(exc.detail)}


def jobs_exception_handler(exc: Exception, context: dict) -> Response | None:
    response = api_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.NotAuthenticated):
        error = {"apikey": MISSING_KEY}
    elif isinstance(exc, exceptions.ParseError):
        error = {"body": _message(data.get("detail", data))}
    elif isinstance(data, dict) and set(data) == {"detail"}:
        error = {PARAMETER_BY_STATUS.get(response.status_code, "request"): _message(data["detail"])}
    elif isinstance(data, dict):
        error = _flatten(data)
    else:
        error = {"job": _message(data)}
    if response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        error = {"service": next(iter(error.values()))}
    response.data = {"error": error}
    if isinstance(exc, JobBatchInvalid):
        response.data["errors"] = [{"index": index, "error": problems} for index, problems in exc.errors.items()]
    return response


class QueueNotEmpty(exceptions.APIException):
    """A queue that still holds active jobs cannot be removed (the /api/v1/ error format: `{"detail": ...}`)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "queue_not_empty"
