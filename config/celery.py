import os

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def refuse_without_secrets(**kwargs) -> None:
    """A worker or scheduler without its secrets stops at once (SystemExit passes the
    signal's error handling, which would only log an exception)."""
    from core.startup import secrets_problem

    problem = secrets_problem()
    if problem:
        raise SystemExit(problem)
