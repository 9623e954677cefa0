"""The jobs face's token forms: the shared ones, plus `apikey` in the body (the Moment contract)."""

from collections.abc import Mapping

from accounts.authentication import TokenAuthentication


def _body_apikey(request) -> str | None:
    data = request.data
    if isinstance(data, Mapping):
        value = data.get("apikey")
        if isinstance(value, str) and value:
            return value
    return None


class JobsTokenAuthentication(TokenAuthentication):
    """The shared token forms, plus `apikey` as a form field or JSON body field."""

    def raw_token(self, request) -> str | None:
        return super().raw_token(request) or _body_apikey(request)
