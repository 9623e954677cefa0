"""Tokens never reach the logs, even though every face accepts one in the query string, and no
input can write a log line of its own."""

import logging
import os
import sys

import httpx
import pytest

from core.logging import SafeLogRecords, escape, redact
from harness.processes import Process
from harness.waiting import free_port, wait_for_http

SECRET = "0123456789abcdef0123456789abcdef01234567"
# Every way authentication reads a token from the query string, with the name written as a client may write it.
ENCODED_PARAMETERS = ["token", "apikey", "%74oken", "api%6Bey", "%74%6F%6B%65%6E", "%61%70%69%6b%65%79", "tok%65n"]
FORGED = "2026-01-01 00:00:00,000 CRITICAL forged: FORGED"


def test_a_token_in_a_query_string_is_redacted():
    assert redact(f"GET /cache/c?key=k&token={SECRET} HTTP/1.1") == "GET /cache/c?key=k&token=[redacted] HTTP/1.1"
    assert redact(f"/jobs.json?apikey={SECRET}&job[uri]=x") == "/jobs.json?apikey=[redacted]&job[uri]=x"
    assert redact("/cache/c?key=token") == "/cache/c?key=token"  # a key named token is not a token
    assert redact("/cache/c?key=a=b&x=1") == "/cache/c?key=a=b&x=1"


@pytest.mark.parametrize("name", ENCODED_PARAMETERS)
def test_a_token_is_redacted_however_its_name_is_encoded(name):
    assert redact(f'"GET /cache/c?key=k&{name}={SECRET} HTTP/1.1" 200') == (
        f'"GET /cache/c?key=k&{name}=[redacted] HTTP/1.1" 200'
    )


def test_control_characters_and_line_separators_are_escaped():
    written = "a\nb\r\nc\x00d\x1be\x85f\u2028g\u2029h\ti é"
    assert escape(written) == "a\\nb\\r\\nc\\x00d\\x1be\\x85f\\u2028g\\u2029h\ti é"


def test_the_filter_cleans_the_formatted_message_of_a_record():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s "%s %s"',
        ("1.2.3.4", "GET", f"/x?%74oken={SECRET}\nINFO forged"),
        None,
    )
    SafeLogRecords().filter(record)
    assert record.getMessage() == '1.2.3.4 "GET /x?%74oken=[redacted]\\nINFO forged"'


def test_the_web_processes_logs_hold_no_token_and_no_forged_line(tmp_path):
    port = free_port()
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    server = Process("web", command, env=environment, log=tmp_path / "web.log").start()
    base = f"http://127.0.0.1:{port}"
    forged = FORGED.replace(" ", "%20")
    try:
        wait_for_http(f"{base}/api/health/?token={SECRET}", status=None)
        with httpx.Client(base_url=base, timeout=30) as http:
            for name in ENCODED_PARAMETERS:
                for path in ("/api/health/", "/cache/news", "/topics/chat/room", "/jobs.json"):
                    http.get(f"{path}?key=k&{name}={SECRET}")
            http.get(f"/api/missing%0D%0A{forged}")  # Django logs the path of a 404
            http.get(f"/api/missing%E2%80%A8{forged}")
    finally:
        server.stop(grace=30)
    output = server.output()
    assert "/api/health/?token=[redacted]" in output  # the requests were logged...
    assert SECRET not in output  # ...without their token
    assert "/api/missing\\r\\n2026" in output  # the 404 was logged, on its own line
    assert all(not line.startswith(FORGED[:20]) for line in output.splitlines())
    assert "\u2028" not in output


@pytest.mark.parametrize("setting", [None, "false"])
def test_the_access_log_is_written_unless_it_is_turned_off(tmp_path, setting):
    """uvicorn's own --no-access-log cannot turn it off (the service configures the loggers after uvicorn): the
    ACCESS_LOG setting does, and the service's own messages are logged either way."""
    port = free_port()
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "LOG_LEVEL": "INFO"}
    if setting is not None:
        environment["ACCESS_LOG"] = setting
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    server = Process("web", command, env=environment, log=tmp_path / "web.log").start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/api/health/", status=None)
        httpx.get(f"{base}/api/health/?marker=seen")
        httpx.get(f"{base}/api/missing-page-marker/")  # Django logs a 404 (a warning): not the access log
    finally:
        server.stop(grace=30)
    output = server.output()
    assert ("GET /api/health/?marker=seen" in output) is (setting is None), output
    assert "missing-page-marker" in output
