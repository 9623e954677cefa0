class AuthenticationError(Exception):
    """The request's token is missing, unknown, expired or revoked (401)."""


class ScopeDenied(Exception):
    """The token is valid but does not hold the scope asked for (403)."""
