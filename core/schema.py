"""The error answers every REST operation may give, in the OpenAPI schema."""

DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": 'What is wrong, by field (`{"field": ["message"]}`), or `{"detail": "..."}`.',
    "additionalProperties": True,
}

COMMON_ERRORS = {
    "400": ("The request is malformed; the body says what is wrong.", FIELD_ERRORS),
    "401": ("No token, or an unknown, expired or revoked one.", DETAIL),
    "403": ("The token does not hold the scope this needs; the body names it.", DETAIL),
    "404": ("No such record, or not one this token may see.", DETAIL),
    "503": ("The database or Redis cannot be reached.", DETAIL),
}


def add_common_error_responses(result: dict, generator, request, public) -> dict:
    """Document the common errors on every /api/ operation that does not describe them itself."""
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, (description, schema) in COMMON_ERRORS.items():
                responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": schema}}}
                )
    return result
