"""`prepared_cursor`: statements run many times a second prepared once a connection, bound on the server."""

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError
from django.test.utils import CaptureQueriesContext

from core.db import prepared_cursor

STATEMENT = "SELECT %(a)s::int + %(b)s::int, %(tag)s::text /* prepared-test */"


def run(a: int) -> tuple:
    with prepared_cursor() as cursor:
        cursor.execute(STATEMENT, {"a": a, "b": 1, "tag": "x"})
        return cursor.fetchone()


def prepared() -> dict[str, int]:
    """The statements of this test prepared on the connection, and how often each ran."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%prepared-test%"],
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db
def test_a_statement_is_prepared_on_its_connection_the_first_time_and_run_from_there_after():
    assert [run(n) for n in range(3)] == [(1, "x"), (2, "x"), (3, "x")]

    [(text, runs)] = prepared().items()
    assert runs == 3
    assert "$1::int + $2::int" in text  # bound on the server, not written into the text


@pytest.mark.django_db
def test_with_prepared_statements_turned_off_it_is_a_plain_cursor(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    assert [run(n) for n in range(2)] == [(1, "x"), (2, "x")]
    assert prepared() == {}


@pytest.mark.django_db
def test_its_statements_are_logged_and_its_errors_are_djangos():
    with CaptureQueriesContext(connection) as queries:
        run(1)
    assert [query["sql"] for query in queries] == [STATEMENT]  # as given (psycopg keeps no text of its own)

    with pytest.raises(ProgrammingError, match="no_such_column"), transaction.atomic(), prepared_cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM jobs_job WHERE id = %(id)s /* prepared-test */", {"id": 1})


def test_after_a_rollback_or_on_a_new_connection_it_is_prepared_again(transactional_db):
    with pytest.raises(RuntimeError), transaction.atomic():
        assert run(1) == (2, "x")
        raise RuntimeError("rolled back")  # which deallocates the connection's prepared statements
    assert prepared() == {}
    assert run(2) == (3, "x")
    assert list(prepared().values()) == [1]

    connection.close()
    assert run(3) == (4, "x")
    assert list(prepared().values()) == [1]
