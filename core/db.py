from django.db import close_old_connections, connection


def close_stale_connections() -> None:
    """What Django does at the start of each request, for code that runs outside one
    (the lean ASGI apps): drop database connections that are broken or too old.
    Inside an open transaction (a test's, say) the connection is left alone."""
    if not connection.in_atomic_block:
        close_old_connections()
