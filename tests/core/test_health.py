import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import __version__

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_health_says_all_is_well(client):
    response = client.get("/api/health/")
    assert response.status_code == 200
    assert response.json() == {
        "up": True,
        "result": {"database": "Accessible", "redis": "Accessible", "version": __version__},
    }


@pytest.mark.django_db
def test_health_names_redis_when_it_cannot_be_reached(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.REDIS_SOCKET_TIMEOUT = 1
    response = client.get("/api/health/")
    assert response.status_code == 503
    assert response.json()["up"] is False
    assert response.json()["result"]["redis"] == "Not accessible"
    assert response.json()["result"]["database"] == "Accessible"


def test_health_names_the_database_when_it_cannot_be_reached():
    """A separate process whose DATABASE_URL points at a closed port."""
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/api/health/');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "true",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere",
        "ALLOWED_HOSTS": "testserver",
        "LOG_LEVEL": "CRITICAL",
    }
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["up"] is False
    assert answer["body"]["result"]["database"] == "Not accessible"


def test_health_answers_get_only(client):
    assert client.post("/api/health/").status_code == 405
