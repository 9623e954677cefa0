"""Errors every face raises and every face's error handler knows.

They live on the ground floor so that the handlers (core/exceptions.py for DRF,
core/asgi.py for the lean paths) translate them without importing the apps
that raise them.
"""


class AuthenticationError(Exception):
    """The request's token is missing, unknown, expired or revoked (401)."""


class ScopeDenied(Exception):
    """The token is valid but does not hold the scope asked for (403)."""
