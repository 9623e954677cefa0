"""Reading a job's parameters however a client sends them.

- query parameters or form fields in bracket form: `job[uri]=...&job[at]=...`,
  `job[headers][X-Name]=value`, `job[retry_schedule][]=10`;
- a JSON body `{"job": {...}, "apikey": "..."}`, also with single-quoted strings
  (the reference's own cURL example sends that) in a body of at most 64 KiB;
- `_method=PUT|DELETE` in any of them turns a POST into that method;
- a batch: a JSON body `{"jobs": [{"job": {...}}, ...]}`, each job in the form a JSON
  create takes, the body at most JOBS_MAX_BATCH_BYTES.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping

from django.conf import settings
from django.http import QueryDict
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, JSONParser

from core.exceptions import RequestTooLarge

from .errors import JobParameterError
from .services import JOB_FIELDS

JSON_EXAMPLE = (
    '{"job": {"uri": "https://example.org/hook", "at": "2030-01-31T18:36:21", "method": "POST"}, "apikey": "<key>"}'
)
BATCH_ELEMENT = '{"job": {"uri": "https://example.org/hook", "at": "2030-01-31T18:36:21"}}'
BATCH_EXAMPLE = f'{{"jobs": [{BATCH_ELEMENT}, ...], "apikey": "<key>"}}'
# The largest body whose single-quoted strings are read (a hand-written cURL command is far smaller):
# that reading walks the text in Python, so a larger body would cost a second of CPU per megabyte,
# to anyone (the body is read before the key is known when the key is in it).
SINGLE_QUOTED_MAX_CHARS = 65_536
# \Z and DOTALL: a name holding a line break is read (and refused by the rules of values), not skipped.
_BRACKETED = re.compile(r"^job\[([^\[\]]*)\](.*)\Z", re.DOTALL)
_SUBKEY = re.compile(r"^\[([^\[\]]*)\]\Z")


def _single_quoted_to_json(text: str) -> str | None:
    """`text` with its single-quoted strings double-quoted, or None when that is not simple."""
    out, index, length = [], 0, len(text)
    while index < length:
        char = text[index]
        if char == '"':
            end = index + 1
            while end < length and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[index : end + 1])
            index = end + 1
        elif char == "'":
            end = text.find("'", index + 1)
            if end < 0:
                return None
            inner = text[index + 1 : end]
            if "\\" in inner:
                return None
            out.append(json.dumps(inner))
            index = end + 1
        else:
            out.append(char)
            index += 1
    return "".join(out)


class UnreadableJSON(ValueError):
    """JSON the service cannot hold; the message says why."""


def read_json(text: str) -> object:
    """`json.loads(text)` for text a client sent: json.JSONDecodeError when it is not JSON, and
    UnreadableJSON when it is JSON that cannot be held: nested too deeply, a number of more
    digits than Python converts, or a string that is not text (a lone surrogate such as \\ud800,
    which could be neither stored nor repeated in an answer)."""
    try:
        value = json.loads(text)
        json.dumps(value, ensure_ascii=False).encode()  # a lone surrogate cannot be encoded
    except RecursionError:
        raise UnreadableJSON("it is nested too deeply") from None
    except json.JSONDecodeError:
        raise
    except ValueError as error:  # UnicodeEncodeError is one too
        raise UnreadableJSON(f"it holds a value that cannot be read: {error}") from None
    return value


def _loads(text: str) -> object:
    """`read_json(text)`, JSON the service cannot hold as a ParseError."""
    try:
        return read_json(text)
    except UnreadableJSON as error:
        raise ParseError(f"The body cannot be read: {error}. Send a JSON object of job parameters.") from None


class LenientJSONParser(JSONParser):
    """JSON, also with single-quoted strings (in a body of at most SINGLE_QUOTED_MAX_CHARS); a 400
    saying what to fix otherwise (never a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode((parser_context or {}).get("encoding", settings.DEFAULT_CHARSET))
        except UnicodeDecodeError:
            raise ParseError("The body is not UTF-8 text.") from None
        if not text.strip():
            return {}
        try:
            return _loads(text)
        except json.JSONDecodeError as error:
            problem = error
        if "'" in text and len(text) <= SINGLE_QUOTED_MAX_CHARS:
            converted = _single_quoted_to_json(text)
            if converted is not None:
                try:
                    return _loads(converted)
                except json.JSONDecodeError:
                    pass
        raise ParseError(
            f"The body is not valid JSON ({problem.msg} at line {problem.lineno}, column {problem.colno}). "
            f"Send a JSON object with double-quoted names and strings, e.g. {JSON_EXAMPLE}, "
            "or send form fields such as job[uri]=...&job[at]=... instead."
        )


class BatchJSONParser(BaseParser):
    """A batch's JSON, read as LenientJSONParser reads it, up to JOBS_MAX_BATCH_BYTES: a 413 past it.

    Not a JSONParser: DRF reads such a parser's body through Django's `request.body`, held to
    MAX_REQUEST_BODY_BYTES. The ASGI front refuses a body past the limit before it is read
    (config/asgi.py); this holds where the service runs without it.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.JOBS_MAX_BATCH_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(f"The batch is larger than the limit of {limit} bytes (JOBS_MAX_BATCH_BYTES).")
        return LenientJSONParser().parse(io.BytesIO(raw), media_type, parser_context)


def _items(source) -> list[tuple[str, object]]:
    if isinstance(source, QueryDict):
        return [(key, values if key.endswith("[]") else values[-1]) for key, values in source.lists()]
    if isinstance(source, Mapping):
        return list(source.items())
    return []


def _put(params: dict, name: str, value: object) -> None:
    if name not in JOB_FIELDS:
        raise JobParameterError(name, f"Unknown job parameter; a job takes {', '.join(JOB_FIELDS)}.")
    params[name] = value


def _apikey_checked(data: Mapping) -> None:
    """A body's `apikey`, when given, is text (an empty one is taken as not given)."""
    if "apikey" in data and not isinstance(data["apikey"], str):
        raise JobParameterError("apikey", 'The API key must be a string, e.g. "apikey": "<key>".')


def job_parameters(request) -> dict:
    """The job parameters a request carries: query string first, then the body (which wins)."""
    if not isinstance(request.data, Mapping):
        raise JobParameterError("body", f"The body must be a JSON object, e.g. {JSON_EXAMPLE}.")
    _apikey_checked(request.data)
    return _parameters(request.query_params, request.data)


def batch_job_parameters(element: object) -> dict:
    """The job parameters of one job of a batch, read as those of a JSON create's body."""
    if not isinstance(element, Mapping):
        raise JobParameterError(
            "job", f"Each job of a batch is an object as a JSON create takes, e.g. {BATCH_ELEMENT}."
        )
    return _parameters(element)


def batch_jobs(request) -> list:
    """The jobs of a batch's body, `{"jobs": [...]}`: at most JOBS_MAX_BATCH."""
    data = request.data
    if not isinstance(data, Mapping) or not isinstance(data.get("jobs"), list):
        raise JobParameterError("jobs", f'The body must be a JSON object {{"jobs": [...]}}, e.g. {BATCH_EXAMPLE}.')
    _apikey_checked(data)
    jobs = data["jobs"]
    if len(jobs) > settings.JOBS_MAX_BATCH:
        raise JobParameterError(
            "jobs", f"A batch may hold at most {settings.JOBS_MAX_BATCH} jobs (JOBS_MAX_BATCH), not {len(jobs)}."
        )
    return jobs


def _parameters(*sources) -> dict:
    """The job parameters of `sources` (query string, form or JSON object), the later winning."""
    params: dict = {}
    for source in sources:
        for key, value in _items(source):
            if key == "job":
                if not isinstance(value, Mapping):
                    raise JobParameterError("job", f"job must be an object of parameters, e.g. {JSON_EXAMPLE}.")
                for name, inner in value.items():
                    _put(params, str(name), inner)
                continue
            match = _BRACKETED.match(key)
            if match is None:
                continue
            name, rest = match.groups()
            if rest in ("", "[]"):
                _put(params, name, value)
                continue
            sub = _SUBKEY.match(rest)
            if sub is None or name != "headers":
                raise JobParameterError(key, "Unreadable parameter name: write job[name] or job[headers][Header-Name].")
            headers = params.get("headers")
            if not isinstance(headers, dict):
                headers = {}
            headers[sub.group(1)] = value
            _put(params, "headers", headers)
    return params


def method_override(request) -> str | None:
    """The method a POST asks to be taken as (`_method`), upper-cased, or None."""
    value = request.query_params.get("_method")
    if value is None and isinstance(request.data, Mapping):
        value = request.data.get("_method")
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in ("PUT", "DELETE"):
        raise JobParameterError("_method", f"_method must be PUT or DELETE, not {value!r}.")
    return value.upper()
