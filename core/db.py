import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished
from django.db import close_old_connections, connection, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Lookup
from django.db.models.lookups import In
from django.dispatch import receiver


def close_stale_connections() -> None:
    """What Django does at the start of each request, for code that runs outside one
    (the lean ASGI apps): drop database connections that are broken or too old.
    Inside an open transaction (a test's, say) the connection is left alone."""
    if not connection.in_atomic_block:
        close_old_connections()


@receiver(request_finished, sender=ASGIHandler)
def close_asgi_request_connections(**kwargs) -> None:
    """Close the database connections of a request Django served under ASGI, when it ends.

    Django runs each such request in a context of its own, with connections of its own that no later request
    uses, whatever CONN_MAX_AGE says. Left open, each waited for the garbage collector to find it (a connection
    holds reference cycles): a busy web process whose collector ran rarely reached PostgreSQL's max_connections.
    A connection inside a transaction (a test's) is left alone."""
    for each in connections.all(initialized_only=True):
        if not each.in_atomic_block:
            each.close()


class LoopConnection:
    """The database connection of a thread that uses it turn after turn (a worker's recorder): before
    each turn, what Django does at the start of a request (drop a connection that raised an error and
    is no longer usable, or one older than CONN_MAX_AGE), but its health check (a `SELECT 1` round
    trip before the next use) only when the connection has been left alone for `idle_seconds`. A
    connection that answered a moment ago is not asked again on every turn; one that broke meanwhile
    fails the turn, and the caller closes it and tries again.
    """

    def __init__(self, idle_seconds: float = 1.0) -> None:
        self.idle_seconds = idle_seconds
        self._last_turn = -math.inf

    def refresh(self) -> None:
        """Call before each turn, in the thread that uses the connection."""
        now = time.monotonic()
        if now - self._last_turn >= self.idle_seconds or connection.errors_occurred:
            close_old_connections()
        elif connection.close_at is not None and now >= connection.close_at:
            connection.close()
        self._last_turn = now


@cache
def _preparing_cursor_class() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        """Binds its parameters on the server and has each statement it runs prepared on the connection."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True, binary=binary)

    return PreparingCursor


class _PreparedDebugWrapper(CursorDebugWrapper):
    """Logs a prepared statement as it was given, with its parameters: psycopg keeps no text of what a prepared
    statement ran where Django reads it for the log (which would show None)."""

    def execute(self, sql, params=None):
        with self.debug_sql(sql, params):
            return CursorWrapper.execute(self, sql, params)


@contextmanager
def prepared_cursor() -> Iterator:
    """A cursor of the default connection for statements run many times a second on the same connection (the
    claims and records of job delivery). On PostgreSQL, unless DATABASE_PREPARED_STATEMENTS is off, it binds
    its parameters on the server and each statement it runs is prepared on the connection the first time and
    reused after: PostgreSQL parses it once and, once it finds a generic plan as good as the custom ones,
    plans it once. Django's cursors bind on the client and prepare nothing, so each run is parsed and
    planned anew. Elsewhere, `connection.cursor()`."""
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = _preparing_cursor_class()(connection.connection)
    wrapped = _PreparedDebugWrapper(cursor, connection) if connection.queries_logged else connection.make_cursor(cursor)
    with wrapped:
        yield wrapped


class AnyOf(Lookup):
    """`field__any_of=values`: the rows whose field is one of `values`, as `__in` gives them.

    On PostgreSQL it is `field = ANY(%s)` with the values as one array parameter, so a list of
    hundreds of ids is bound and sent as one value, not one placeholder each (the hot paths of
    job delivery read and write hundreds of rows by id at a time). Elsewhere it is `__in`.
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        return In(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_postgresql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s::{self.lhs.output_field.db_type(connection)}[])", (*params, self.rhs)
