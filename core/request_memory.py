"""Letting go of what a request read, as soon as its response is ready.

A request served by Django and the REST framework sits in reference cycles: its REST request's
parser context refers to that request and to the view, the view refers to the request and the
response, the response's renderer context to the view and the request, and Django's lazy
`request.user` and message storage to the request. Refcounting never frees a cycle: the garbage
collector does, when it next walks the young generation. Until then the request keeps its body
and what was parsed from it, megabytes for a large upload, and a web process under load holds
as many of them as the collector lets pass between two walks.

So, once the response is ready (rendered: the REST framework's responses are rendered inside
the handler), this drops the body, the form data and files, the REST request's parsed data and
what the serializer behind the response's data was given, and breaks the REST framework's own
cycles (parser and renderer contexts). The view, the REST request and the response then go when
the handler lets go of them; Django's own small cycles wait for the collector as before, without
the body. That keeps a web process's memory bounded when its collector runs rarely
(`core.startup.WEB_YOUNG_GENERATION_THRESHOLD`).
"""

from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

from .middleware import ResponseMiddleware

# The attributes holding what a REST framework request parsed, and the stream it read it from.
_PARSED = ("_data", "_full_data", "_files", "_stream")
# What a serializer was given and made of it. A serializer is a cycle too (its fields refer back to it).
_SERIALIZED = ("initial_data", "_validated_data")


def release_request(request, response) -> None:
    """Drop what `request` read and parsed, and break the REST framework's cycles around it, now that
    `response` is ready. After this the request's body reads as empty."""
    state = request.__dict__
    if "_body" in state:
        request._body = b""
    if "_post" in state:
        request._post = QueryDict()
    if "_files" in state:
        request._files = MultiValueDict()
    context = getattr(response, "renderer_context", None)
    if not isinstance(context, dict):
        return  # not a REST framework response
    rest_request = context.get("request")
    if rest_request is not None:
        for name in _PARSED:
            if name in rest_request.__dict__:
                setattr(rest_request, name, None)
        rest_request.parser_context = {}
    response.renderer_context = {}
    # The serializer behind the response's data (its errors, or what it saved), when there is one.
    serializer = getattr(getattr(response, "data", None), "serializer", None)
    if serializer is not None:
        for name in _SERIALIZED:
            serializer.__dict__.pop(name, None)
        serializer.__dict__.get("_kwargs", {}).pop("data", None)  # kept to make a list serializer's children


class ReleaseRequestMiddleware(ResponseMiddleware):
    """`release_request` for each request, when its response comes back through the middleware."""

    def answered(self, request, response, started: float) -> None:
        release_request(request, response)
