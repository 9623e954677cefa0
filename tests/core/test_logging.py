"""Tokens never reach the logs, even though every face accepts one in the query string."""

import logging
import os
import sys

from core.logging import RedactTokens, redact
from harness.processes import Process
from harness.waiting import free_port, wait_for_http

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


def test_the_web_processes_access_log_holds_no_token(tmp_path):
    port = free_port()
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    server = Process("web", command, env=environment, log=tmp_path / "web.log").start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/health/?token={SECRET}", status=None)
    finally:
        server.stop(grace=30)
    output = server.output()
    assert "/api/health/?token=[redacted]" in output  # the request was logged...
    assert SECRET not in output  # ...without its token
