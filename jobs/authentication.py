"""The jobs face's token forms: the shared ones, plus `apikey` in the body (the Moment contract).

The body is read only when neither the Authorization header nor the query carries a token,
and then with the jobs parsers' limits: a body that cannot be read is a 4xx in the jobs
error format, and a request without a token anywhere is a 401.
"""

from collections.abc import Mapping

from rest_framework.exceptions import UnsupportedMediaType

from accounts.authentication import TokenAuthentication


def _body_apikey(request) -> str | None:
    try:
        data = request.data
    except UnsupportedMediaType:  # a body no parser reads holds no key; the request goes on without one
        return None
    if isinstance(data, Mapping):
        value = data.get("apikey")
        if isinstance(value, str) and value:
            return value
    return None


class JobsTokenAuthentication(TokenAuthentication):
    """The shared token forms, plus `apikey` as a form field or JSON body field."""

    def raw_token(self, request) -> str | None:
        return super().raw_token(request) or _body_apikey(request)  # the body only when needed
