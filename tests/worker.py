from contextlib import contextmanager

from celery.contrib.testing.worker import start_worker
from django.db import connection

from config.celery import app as celery_app


@contextmanager
def running_worker():
    """A real Celery worker in a thread of this process, consuming the test broker's queue,
    stopped on leaving. Only one runs at a time, and none outside a `with`.

    A starting worker closes the database sockets it finds open (it expects a fresh
    fork), so this thread's connection is closed first and opened again when used.
    """
    connection.close()
    with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30):
        yield
