"""Settings for the test suite: PostgreSQL and a Redis database of its own."""

import os
import secrets

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("JOBS_SIGNING_KEY", secrets.token_urlsafe(32))

from config.celery import broker_is_rabbitmq
from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
# A Redis broker's keys carry a prefix, so clearing the test data spares queued tasks.
if not broker_is_rabbitmq(CELERY_BROKER_URL):  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": "test-broker:"}
