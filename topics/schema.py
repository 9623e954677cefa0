"""Topics in the OpenAPI schema: served outside DRF, so described here."""

from cache_api.schema import CACHE_NAME, ERRORS, MESSAGE, SECURITY, _error

PATH_PARAMETERS = [
    CACHE_NAME,
    {
        "name": "topicName",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"},
    },
]

VALUE = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "binary": {"type": "string", "format": "byte"}},
}
ITEM = {
    "type": "object",
    "properties": {
        "item": {
            "type": "object",
            "properties": {
                "topic_sequence_number": {"type": "integer"},
                "sequence_page": {"type": "integer"},
                "value": VALUE,
            },
        },
        "discontinuity": {
            "type": "object",
            "properties": {
                "last_topic_sequence": {"type": "integer"},
                "new_topic_sequence": {"type": "integer"},
                "new_sequence_page": {"type": "integer"},
            },
        },
    },
}

TOPIC_PATH = {
    "post": {
        "operationId": "topic_publish",
        "summary": "Publish a message",
        "tags": ["topics"],
        "parameters": PATH_PARAMETERS,
        "requestBody": {
            "required": True,
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "security": SECURITY,
        "responses": {
            "204": {"description": "Published."},
            "404": _error("`Cache Not Found`."),
            "413": _error("The message is larger than `TOPICS_MAX_MESSAGE_BYTES`."),
            **ERRORS,
        },
    },
    "get": {
        "operationId": "topic_subscribe",
        "summary": "Subscribe: long poll, or Server-Sent Events with Accept: text/event-stream",
        "tags": ["topics"],
        "parameters": [
            *PATH_PARAMETERS,
            {
                "name": "sequence_number",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
                "description": "The next sequence number wanted; 0 (default) starts after the last message now.",
            },
            {
                "name": "sequence_page",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
                "description": "The page of that sequence number; 0 to discover it.",
            },
            {
                "name": "last_event_id",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "pattern": r"^\d+:\d+$"},
                "description": "SSE: resume after this event id (`<page>:<sequence>`), like the Last-Event-ID header.",
            },
        ],
        "security": SECURITY,
        "responses": {
            "200": {
                "description": "Long poll: the messages and discontinuities after the position, in order "
                '(`{"items": []}` after the wait). SSE: a stream of events.',
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "properties": {"items": {"type": "array", "items": ITEM}}}
                    },
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            "404": {"description": "`Cache Not Found`.", **MESSAGE},
            **ERRORS,
        },
    },
}


def add_topics_api(result: dict, generator, request, public) -> dict:
    result.setdefault("paths", {})["/topics/{cacheName}/{topicName}"] = TOPIC_PATH
    return result
