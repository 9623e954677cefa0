"""Processes of the service started by tests: with the real settings, or sharing the test's database."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]

# What starting each kind of process runs; each prints 'loaded' once it is up, or runs on.
PROGRAMS = {
    "settings": [sys.executable, "-c", "import django; django.setup(); print('loaded')"],
    "web": [sys.executable, "-c", "import config.asgi; print('loaded')"],
    "worker": [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=WARNING"],
    "scheduler": [sys.executable, "manage.py", "runscheduler"],
    "dispatcher": [sys.executable, "manage.py", "dispatchjobs"],
}


def load_settings(*, unset: set[str], start: str = "settings", **environment: str) -> subprocess.CompletedProcess:
    """Start `start` (see PROGRAMS) in a fresh process with the real settings, `unset`
    variables removed and `environment` added."""
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(environment, DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run(PROGRAMS[start], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def child_environment(**extra: str) -> dict[str, str]:
    """The environment of a process of the service (a worker, the dispatcher...) that uses the test's
    database and Redis, with `extra` settings."""
    database = connection.settings_dict
    credentials = database["USER"] + (f":{database['PASSWORD']}" if database["PASSWORD"] else "")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    environment.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"postgres://{credentials}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        **extra,
    )
    return environment
