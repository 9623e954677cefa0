import math
import time

from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished
from django.db import close_old_connections, connection, connections
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
