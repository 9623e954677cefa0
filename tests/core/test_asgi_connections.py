"""The database connections of requests Django serves under ASGI: closed when each request ends."""

import gc

import pytest
from django.db import connection

from .serving import serve

REQUESTS = 20


def open_connections() -> int:
    """This test database's connections, as PostgreSQL counts them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_each_django_request_under_asgi_closes_its_connection_when_it_ends(make_token):
    """Each request runs in a context of its own and opens a connection of its own: left open, it waited for the
    garbage collector, and a busy web process reached PostgreSQL's max_connections."""
    _, token = make_token()
    before = open_connections()

    async def requests(client) -> list[int]:
        return [
            (await client.get("/api/v1/caches/", headers={"Authorization": f"Token {token}"})).status_code
            for _ in range(REQUESTS)
        ]

    gc.collect()  # what earlier tests left for the collector goes now, not during the requests
    statuses = serve(requests)
    assert statuses == [200] * REQUESTS
    assert open_connections() - before <= 1
