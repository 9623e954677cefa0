"""Tokens never reach the logs, even though every face accepts one in the query string."""

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.logging import RedactTokens, redact

ROOT = Path(__file__).resolve().parents[2]
SECRET = "0123456789abcdef0123456789abcdef01234567"


def test_a_token_in_a_query_string_is_redacted():
    assert redact(f"GET /cache/c?key=k&token={SECRET} HTTP/1.1") == "GET /cache/c?key=k&token=[redacted] HTTP/1.1"
    assert redact(f"/jobs.json?apikey={SECRET}&job[uri]=x") == "/jobs.json?apikey=[redacted]&job[uri]=x"
    assert redact("/cache/c?key=token") == "/cache/c?key=token"  # a key named token is not a token


def test_the_filter_redacts_the_arguments_of_a_record():
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s "%s %s"', ("1.2.3.4", "GET", f"/x?token={SECRET}"), None
    )
    RedactTokens().filter(record)
    assert SECRET not in record.getMessage()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_web_processes_access_log_holds_no_token():
    port = _free_port()
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health/?token={SECRET}", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "/api/health/?token=[redacted]" in output  # the request was logged...
    assert SECRET not in output  # ...without its token
