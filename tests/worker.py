from contextlib import contextmanager

from celery.contrib.testing.worker import start_worker
from django.db import connection

from config.celery import app as celery_app
from config.celery import broker_transport_options
from harness.waiting import free_port


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


@contextmanager
def using_broker(url: str, transport_options: dict | None = None):
    """Celery's broker, in this process, is `url` (with kombu's `transport_options`, by default
    those of its kind) until leaving."""
    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport_options

    def use(broker_url: str, options: dict) -> None:
        celery_app.conf.broker_url = broker_url
        celery_app.conf.broker_transport_options = options
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    use(url, broker_transport_options(url) if transport_options is None else transport_options)
    try:
        yield
    finally:
        use(*saved)


def unreachable_broker():
    """Celery's broker is a port nothing listens on (Redis down, for queueing tasks) until leaving."""
    return using_broker(f"redis://127.0.0.1:{free_port()}/0")
