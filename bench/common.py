"""What the service benchmarks share: a service environment of its own, and its set-up."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def service_environment(*, database: str, redis_url: str, **settings: str) -> dict[str, str]:
    """The environment of a production-like service process on its own database and Redis DB.

    The rate-limit counters still run on every request; the request limit is set out of reach.
    """
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + "x" * 40,
        "JOBS_SIGNING_KEY": "bench-only-signing-key",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "WARNING",
        "CACHE_RATE_LIMIT_REQUESTS": "100000000",
        **settings,
    }


def prepare_service(environment: dict[str, str], *, cache: str, scope: str) -> str:
    """Create the database if need be, migrate, create `cache`; a new token with `scope`."""
    database = environment["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            connection.execute(f"CREATE DATABASE {database}")

    def manage(*args: str) -> str:
        return subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
        ).stdout

    manage("migrate", "--noinput", "-v0")
    manage("createcache", cache)
    return manage("createtoken", "bench@example.org", "--scope", scope).strip().splitlines()[-1]
