"""The error answers every REST operation may give, in the OpenAPI schema, and the
description of an API-key authentication class as a security scheme.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# A serializer's errors by field (a list of messages, or the errors of a nested value), or
# `{"detail": "..."}` when the body cannot be read at all.
VALIDATION_ERRORS = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {"anyOf": [{"type": "array", "items": {}}, {"type": "object"}]},
    "example": {"text_content": ["Messages must have text or file attached"]},
}
FIELD_ERRORS = OpenApiResponse(
    response=VALIDATION_ERRORS,
    description=(
        'What is wrong, by field (`{"field": ["message"]}`; `non_field_errors` for what concerns several '
        'fields), or `{"detail": "..."}` when the body cannot be read.'
    ),
)

COMMON_ERRORS = {
    "400": ("The request is malformed; the body says what is wrong.", VALIDATION_ERRORS),
    "401": ("No token, or an unknown, expired or revoked one.", DETAIL),
    "403": ("The token does not hold the scope this needs; the body names it.", DETAIL),
    "404": ("No such record, or not one this token may see.", DETAIL),
    "503": ("The database or Redis cannot be reached.", DETAIL),
}

# Every face also reads the token from the query string (`?token=`; the jobs API's `?apikey=`).
TOKEN_QUERY_SCHEME = {
    "type": "apiKey",
    "in": "query",
    "name": "token",
    "description": "The token as a query parameter, for clients that cannot set headers (not with the header).",
}


def api_key_scheme(
    target_class: str, *, name: str, location: str, parameter: str, description: str
) -> type[OpenApiAuthenticationExtension]:
    """Describe the authentication class at `target_class` as the apiKey security scheme `name`,
    read from the `parameter` of the request's `location` (header, query or cookie).

    Defining the extension registers it with drf-spectacular: call this in a module imported
    at start-up (an app's `schema.py`, imported by its `ready()`).
    """
    definition = {"type": "apiKey", "in": location, "name": parameter, "description": description}

    def get_security_definition(self, auto_schema) -> dict:
        return dict(definition)

    return type(
        f"{name[:1].upper()}{name[1:]}Scheme",
        (OpenApiAuthenticationExtension,),
        {"target_class": target_class, "name": name, "get_security_definition": get_security_definition},
    )


TOO_LARGE = ("The body is larger than MAX_REQUEST_BODY_BYTES; the body says the limit.", DETAIL)


def _response(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def add_common_error_responses(result: dict, generator, request, public) -> dict:
    """Document the common errors on every /api/ operation that does not describe them itself."""
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, (description, schema) in COMMON_ERRORS.items():
                responses.setdefault(status, _response(description, schema))
            if "requestBody" in operation:
                responses.setdefault("413", _response(*TOO_LARGE))
    return result


def add_token_query_scheme(result: dict, generator, request, public) -> dict:
    result.setdefault("components", {}).setdefault("securitySchemes", {})["tokenQuery"] = TOKEN_QUERY_SCHEME
    return result


def allow_empty_list_filters(result: dict, generator, request, public) -> dict:
    """A list's filters take an empty value as no filter (`?lang=`), as django-filter does: say so."""
    for operations in result.get("paths", {}).values():
        operation = operations.get("get", {})
        if not operation.get("operationId", "").endswith("_list"):
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["name"] != "page_size":
                parameter["allowEmptyValue"] = True
    return result


# Each operation's face, by the first of these path prefixes it starts with (so the more
# specific prefix comes first); the faces and their descriptions are SPECTACULAR_SETTINGS["TAGS"].
FACE_PREFIXES = (
    ("/api/v1/caches/{cache}/webhooks/", "webhooks"),
    ("/api/v1/caches/", "caches"),
    ("/cache/", "cache items"),
    ("/topics/", "topics"),
    ("/jobs", "jobs"),
    ("/api/v1/tokens/", "tokens"),
    ("/api/v1/user/token/", "tokens"),
    ("/api/v1/subscriptions/", "subscriptions"),
    ("/api/v1/behind-subscriptions/", "subscriptions"),
    ("/api/v1/failed-tasks/", "subscriptions"),
    ("/api/v1/runsendestimate/", "subscriptions"),
    ("/api/metrics/", "subscriptions"),
    ("/api/v1/", "content"),
)


def face_of(path: str) -> str:
    """The face (a tag of SPECTACULAR_SETTINGS["TAGS"]) the operations at `path` belong to."""
    for prefix, face in FACE_PREFIXES:
        if path.startswith(prefix):
            return face
    raise ValueError(f"No face for the path {path}: add its prefix to core.schema.FACE_PREFIXES.")


def tag_operations_by_face(result: dict, generator, request, public) -> dict:
    """Group the operations by face in the docs: one tag per operation, given here by path
    rather than on every view, so a new view lands in its face's group by itself."""
    for path, operations in result.get("paths", {}).items():
        face = face_of(path)
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["tags"] = [face]
    return result
