import os
import sys

from celery import Celery
from celery.signals import (
    beat_init,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# URL schemes of a RabbitMQ (AMQP) broker; any other broker URL is a Redis one.
RABBITMQ_SCHEMES = ("amqp", "amqps", "pyamqp")

app = Celery("config", task_cls="core.ticks:OncePerTick")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's Django fixup closes every database connection before and after each task unless this
# (unprefixed) setting is given; our tasks are many and short (a chunk of jobs, a batch of sends),
# and a new PostgreSQL connection costs more than most of them. Connections are kept as Django
# keeps them between requests instead: up to DATABASE_CONN_MAX_AGE, checked before reuse.
app.conf["CELERY_DB_REUSE_MAX"] = sys.maxsize


def broker_is_rabbitmq(url: str) -> bool:
    return url.partition("://")[0].lower() in RABBITMQ_SCHEMES


def broker_transport_options(url: str) -> dict:
    """Options of the broker's transport, which differ by kind. On RabbitMQ, publisher confirms:
    queueing a task waits until the broker holds it, and fails loudly when it will not. On Redis,
    kombu's defaults (Redis-only options, such as `global_keyprefix`, never reach RabbitMQ)."""
    return {"confirm_publish": True} if broker_is_rabbitmq(url) else {}


@task_prerun.connect
@task_postrun.connect
def close_old_connections(task=None, **kwargs) -> None:
    """What Django does around a request: drop a connection that is broken, errored or too old
    (not around an eager task: that runs inside its caller's work)."""
    from django.db import close_old_connections

    if task is not None and not task.request.is_eager:
        close_old_connections()


@worker_init.connect
@beat_init.connect
def refuse_without_secrets(**kwargs) -> None:
    """A worker or scheduler without its secrets stops at once (SystemExit passes the
    signal's error handling, which would only log an exception)."""
    from core.startup import secrets_problem

    problem = secrets_problem()
    if problem:
        raise SystemExit(problem)


@worker_init.connect
def settle_worker_garbage_collector(**kwargs) -> None:
    """Before the pool's processes are forked (they inherit it): what start-up loaded frozen, and the young
    generation sized past the hundreds of deliveries a worker holds in flight (`core.startup`)."""
    from core.startup import WORKER_YOUNG_GENERATION_THRESHOLD, settle_garbage_collector

    settle_garbage_collector(young_threshold=WORKER_YOUNG_GENERATION_THRESHOLD)


def flush_metrics_and_spans(**kwargs) -> None:
    """A prefork child leaves without running atexit: what it counted since its last flush goes to Redis,
    and its spans not yet exported to the collector, now."""
    from core import metrics, tracing

    metrics.buffer.flush()
    tracing.tracing_flush()


@worker_process_init.connect
def flush_at_exit_last(**kwargs) -> None:
    """In a prefork child, once every task module connected its own shutdown handlers (the jobs' drain, which
    records deliveries): the metrics and spans are flushed after those."""
    worker_process_shutdown.connect(flush_metrics_and_spans, weak=False)
