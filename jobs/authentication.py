from collections.abc import Mapping

from rest_framework import exceptions

from accounts.authentication import TokenAuthentication, read_token
from accounts.errors import AuthenticationError
from accounts.services import token_authenticate


def _body_apikey(request) -> str | None:
    data = request.data
    if isinstance(data, Mapping):
        value = data.get("apikey")
        if isinstance(value, str) and value:
            return value
    return None


class JobsTokenAuthentication(TokenAuthentication):
    """The shared token forms, plus `apikey` as a form field or JSON body field (the jobs contract)."""

    def authenticate(self, request) -> tuple | None:
        try:
            raw = read_token(authorization=request.META.get("HTTP_AUTHORIZATION"), query=request.query_params)
            if raw is None:
                raw = _body_apikey(request)
            if raw is None:
                return None
            token = token_authenticate(raw)
        except AuthenticationError as error:
            raise exceptions.AuthenticationFailed(str(error)) from None
        return token.user, token
