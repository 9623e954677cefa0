"""Cursor pagination for every API list, as the stage-based messaging reference pages.

A page is `{"next", "previous", "results"}` without a count; `next` and `previous`
are absolute URLs that keep the request's filters. The page size is API_PAGE_SIZE
unless the request asks for `page_size`, which may not exceed API_MAX_PAGE_SIZE.
"""

from django.conf import settings
from rest_framework import pagination
from rest_framework.exceptions import ValidationError

from .asgi import ascii_whole_number


def page_size_schema() -> dict:
    """The OpenAPI schema of `page_size`: what get_page_size accepts."""
    return {"type": "integer", "minimum": 1, "maximum": settings.API_MAX_PAGE_SIZE}


class CursorPagination(pagination.CursorPagination):
    ordering = "id"
    page_size_query_param = "page_size"
    page_size_query_description = "Items per page (default API_PAGE_SIZE, at most API_MAX_PAGE_SIZE)."

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return settings.API_PAGE_SIZE
        limit = settings.API_MAX_PAGE_SIZE
        size = ascii_whole_number(raw) or 0  # int() would also take '١٢' or '1_0'
        if not 1 <= size <= limit:
            raise ValidationError({self.page_size_query_param: [f"Must be a whole number from 1 to {limit}."]})
        return size

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = page_size_schema()
        return parameters

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        """The ordering filter's choice, else the view's `ordering`, the queryset's, or `id`.

        The position in a cursor is read from the first field, so it should be unique.
        """
        for backend in getattr(view, "filter_backends", []):
            if hasattr(backend, "get_ordering"):
                ordering = backend().get_ordering(request, queryset, view)
                if ordering:
                    return tuple(ordering)
        if queryset.query.order_by:
            return tuple(queryset.query.order_by)
        return (self.ordering,) if isinstance(self.ordering, str) else tuple(self.ordering)
