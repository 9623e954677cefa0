"""The cache data API in the OpenAPI schema: it is served outside DRF, so it is described here."""

CACHE_NAME = {
    "name": "cacheName",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
    "description": "The cache to operate on.",
}
KEY_PARAMETERS = [
    CACHE_NAME,
    {
        "name": "key",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "minLength": 1},
        "description": "The item's key. Give key or key_base64, not both.",
    },
    {
        "name": "key_base64",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+={0,2}$"},
        "description": "The item's key, base64url-encoded (padding optional), for binary keys.",
    },
]

MESSAGE = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}
        }
    }
}


def _error(description: str) -> dict:
    return {"description": description, **MESSAGE}


ERRORS = {
    "400": _error("The request is malformed; the message says how."),
    "401": _error("The token is missing, unknown, expired or revoked."),
    "403": _error("The token does not allow this; the message names the scope missing."),
    "429": _error("A rate limit is passed; see Retry-After."),
    "503": _error("Redis or the database cannot be reached."),
}

SECURITY = [{"tokenAuth": []}, {"tokenQuery": []}]  # the header or ?token=, not both

CACHE_PATH = {
    "get": {
        "operationId": "cache_item_get",
        "summary": "Get a value",
        "tags": ["cache"],
        "parameters": KEY_PARAMETERS,
        "security": SECURITY,
        "responses": {
            "200": {
                "description": "Hit: the stored bytes.",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            "404": _error("`Key Not Found` or `Cache Not Found`."),
            **ERRORS,
        },
    },
    "put": {
        "operationId": "cache_item_set",
        "summary": "Set a value",
        "tags": ["cache"],
        "parameters": [
            *KEY_PARAMETERS,
            {
                "name": "ttl_seconds",
                "in": "query",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
                "description": "Seconds the item lives; at most the cache's TTL limit (24 h by default).",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        "security": SECURITY,
        "responses": {
            "204": {"description": "Stored."},
            "404": _error("`Cache Not Found`."),
            **ERRORS,
        },
    },
    "delete": {
        "operationId": "cache_item_delete",
        "summary": "Delete a value",
        "tags": ["cache"],
        "parameters": KEY_PARAMETERS,
        "security": SECURITY,
        "responses": {
            "204": {"description": "Deleted (or was not there)."},
            "404": _error("`Cache Not Found`."),
            **ERRORS,
        },
    },
}


def add_cache_data_api(result: dict, generator, request, public) -> dict:
    result.setdefault("paths", {})["/cache/{cacheName}"] = CACHE_PATH
    return result
