"""HTTPS settings and security headers, on Django's paths and on the lean cache and topics paths."""

import json
import os
import secrets
import select
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync

from cache_api import services as cache_services
from config.asgi import application
from harness.processes import Process
from harness.waiting import free_port, wait_for_http
from tests.processes import child_environment
from tests.topics.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]

HTTPS_PREFIXES = ("SECURE_", "SESSION_COOKIE_", "CSRF_COOKIE_")


def documented_production_settings() -> dict[str, str]:
    """The HTTPS and host settings of the documented production environment file (its
    secrets, stores and peers are placeholders for each deployment)."""
    lines = (ROOT / "deploy" / "production.env.example").read_text().splitlines()
    pairs = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    wanted = ("DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS")
    return {name: value for name, value in pairs.items() if name in wanted or name.startswith(HTTPS_PREFIXES)}


PRODUCTION = documented_production_settings()
HTTPS_SETTINGS = [name for name in PRODUCTION if name.startswith(HTTPS_PREFIXES)]
LEAN_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains; preload"


def run_in_a_process(args: list[str], **environment: str) -> subprocess.CompletedProcess:
    """Run `args` with the real settings: this process's environment without the HTTPS
    settings, fresh secrets, and `environment`."""
    env = {key: value for key, value in os.environ.items() if key not in HTTPS_SETTINGS and key != "DEBUG"}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        JOBS_SIGNING_KEY=secrets.token_urlsafe(32),
        **environment,
    )
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def check_deploy(**environment: str) -> subprocess.CompletedProcess:
    return run_in_a_process(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], **environment
    )


def test_check_deploy_passes_with_the_production_settings():
    assert len(HTTPS_SETTINGS) == 7  # every HTTPS switch is in the documented file
    done = check_deploy(**PRODUCTION)
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_check_deploy_names_each_https_setting_left_at_its_default():
    done = check_deploy(DEBUG="false", ALLOWED_HOSTS="sbm.example.org")
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr


def test_the_defaults_keep_plain_http_working():
    script = (
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " hasattr(s, 'SECURE_PROXY_SSL_HEADER') and s.SECURE_PROXY_SSL_HEADER is not None)"
    )
    done = run_in_a_process([sys.executable, "-c", script], DEBUG="true")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "0", "False", "False", "False"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SECURE_SSL_REDIRECT", "sometimes", "SECURE_SSL_REDIRECT must be true or false"),
        ("MAX_REQUEST_HEADER_BYTES", "60000", "MAX_REQUEST_HEADER_BYTES must be at most 49152"),
        ("MAX_UPLOAD_BYTES", "1000000", "MAX_UPLOAD_BYTES must be at least 10551296"),
        ("MAX_REQUEST_HEADERS", "many", "MAX_REQUEST_HEADERS must be a whole number"),
    ],
)
def test_a_bad_https_setting_or_request_bound_stops_start_up_naming_it(name, value, message):
    done = run_in_a_process([sys.executable, "-c", "import django; django.setup()"], **{name: value})
    assert done.returncode != 0
    assert message in done.stderr


# --- Django's paths --------------------------------------------------------------


@pytest.mark.django_db
def test_api_responses_carry_the_security_headers(writer):
    response = writer.get("/api/v1/schedule/")
    assert response.status_code == 200
    for name, value in LEAN_HEADERS.items():
        assert response.headers[name] == value
    assert "strict-transport-security" not in response.headers


@pytest.mark.django_db
def test_api_errors_carry_the_security_headers(client):
    response = client.get("/api/v1/schedule/")
    assert response.status_code == 401
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.fixture
def https_on(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    return settings


@pytest.mark.django_db
def test_https_answers_carry_hsts_and_plain_http_is_redirected(https_on, writer):
    redirected = writer.get("/api/v1/schedule/")
    assert redirected.status_code == 301
    assert redirected.headers["location"] == "https://testserver/api/v1/schedule/"

    through_the_proxy = writer.get("/api/v1/schedule/", HTTP_X_FORWARDED_PROTO="https")
    assert through_the_proxy.status_code == 200
    assert through_the_proxy.headers["strict-transport-security"] == HSTS


@pytest.mark.django_db
def test_health_and_metrics_answer_plain_http_probes_without_a_redirect(https_on, client):
    assert client.get("/api/health/").status_code == 200
    assert client.get("/metrics").status_code == 401  # answered (a token is needed), not redirected


# --- The lean cache and topics paths ------------------------------------------------


def lean_request(method: str, path: str, *, base_url: str = "http://testserver", **kwargs) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            return await http.request(method, path, **kwargs)

    return async_to_sync(send)()


@pytest.fixture
def cache_token(db, make_token):
    cache_services.cache_create(name="news")
    return make_token("cache:readwrite")[1]


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in LEAN_HEADERS.items():
        assert response.headers[name] == value, name


def test_cache_answers_carry_the_security_headers(cache_token):
    stored = lean_request(
        "PUT", "/cache/news?key=k&ttl_seconds=60", content=b"v", headers={"Authorization": cache_token}
    )
    hit = lean_request("GET", "/cache/news?key=k", headers={"Authorization": cache_token})
    missing = lean_request("GET", "/cache/news?key=nothing", headers={"Authorization": cache_token})
    refused = lean_request("GET", "/cache/news?key=k")
    assert [stored.status_code, hit.status_code, missing.status_code, refused.status_code] == [204, 200, 404, 401]
    for response in (stored, hit, missing, refused):
        assert_security_headers(response)
        assert response.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in response.headers
    assert hit.headers["content-type"] == "application/octet-stream"


def test_cache_answers_carry_hsts_over_https_only(cache_token, https_on):
    auth = {"Authorization": cache_token}
    assert (
        lean_request("GET", "/cache/news?key=k", base_url="https://testserver", headers=auth).headers[
            "strict-transport-security"
        ]
        == HSTS
    )
    proxied = lean_request("GET", "/cache/news?key=k", headers={**auth, "X-Forwarded-Proto": "https"})
    assert proxied.headers["strict-transport-security"] == HSTS
    plain = lean_request("GET", "/cache/news?key=k", headers={**auth, "X-Forwarded-Proto": "http"})
    assert "strict-transport-security" not in plain.headers


def test_a_forwarded_proto_is_ignored_unless_the_proxy_is_trusted(cache_token, settings):
    settings.SECURE_HSTS_SECONDS = 60
    response = lean_request(
        "GET", "/cache/news?key=k", headers={"Authorization": cache_token, "X-Forwarded-Proto": "https"}
    )
    assert "strict-transport-security" not in response.headers


def test_a_preflight_carries_the_headers_but_no_cache_control(db):
    response = lean_request(
        "OPTIONS", "/cache/news", headers={"Origin": "https://app.example.org", "Access-Control-Request-Method": "PUT"}
    )
    assert response.status_code == 204
    assert_security_headers(response)
    assert "cache-control" not in response.headers


@pytest.fixture(scope="module")
def live():
    with LiveServer() as server:
        yield server


@pytest.fixture
def topics_token(transactional_db, make_token):
    cache_services.cache_create(name="chat")
    return make_token("topics:publishsubscribe")[1]


def test_topic_long_polls_and_publishes_carry_the_security_headers(live, topics_token, settings):
    settings.TOPICS_LONG_POLL_SECONDS = 1
    with httpx.Client(base_url=live.url, headers={"Authorization": topics_token}, timeout=30) as http:
        published = http.post("/topics/chat/room", content=b"hello", headers={"Content-Type": "text/plain"})
        polled = http.get("/topics/chat/room", params={"sequence_number": "1"})
        empty = http.get("/topics/chat/room")
    assert [published.status_code, polled.status_code, empty.status_code] == [204, 200, 200]
    assert polled.json()["items"][0]["item"]["value"] == {"text": "hello"}
    assert empty.json() == {"items": []}
    for response in (published, polled, empty):
        assert_security_headers(response)
        assert response.headers["cache-control"] == "no-store"


def test_a_topic_event_stream_carries_the_security_headers(live, topics_token):
    headers = {"Authorization": topics_token, "Accept": "text/event-stream"}
    with (
        httpx.Client(base_url=live.url, timeout=30) as http,
        http.stream("GET", "/topics/chat/room", headers=headers) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["x-accel-buffering"] == "no"
        assert stream.headers.get_list("cache-control") == ["no-store"]
        assert_security_headers(stream)


# --- Rate limits any face can use --------------------------------------------------------


def test_a_named_limit_counts_each_subject_apart_in_its_window():
    from core.ratelimit import over_limit

    assert [over_limit("mint", 1, limit=2, seconds=3600) for _ in range(3)] == [False, False, True]
    assert over_limit("mint", 2, limit=2, seconds=3600) is False
    assert over_limit("mint", 1, limit=2, seconds=3600) is True  # still past it, in the same window
    assert over_limit("mint", 1, limit=0, seconds=3600) is False  # 0: no limit


# --- Request bounds, at a web process run as the Procfile runs it ---------------------------


def procfile_web_command(port: int) -> list[str]:
    """The Procfile's web command, on loopback with one worker."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = line.removeprefix("web:").replace("$PORT", str(port)).replace("${WEB_CONCURRENCY:-2}", "1")
    arguments = shlex.split(command)
    assert arguments[0] == "uvicorn"
    arguments[arguments.index("--host") + 1] = "127.0.0.1"
    return [sys.executable, "-m", *arguments]


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, tmp_path_factory):
    """The port of a web process started with the Procfile's command and the test settings."""
    with django_db_blocker.unblock():
        environment = child_environment()
    port = free_port()
    log = tmp_path_factory.mktemp("web") / "web.log"
    server = Process("web", procfile_web_command(port), env=environment, log=log).start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/health/", status=None)
        yield port
    finally:
        server.stop(grace=30)


def answered(connection: socket.socket) -> bool:
    """Whether the server has sent something (or closed) on `connection`: asked of poll(), which takes any file
    descriptor, where select() refuses one past 1024 (a long test run holds many)."""
    poller = select.poll()
    poller.register(connection, select.POLLIN)
    return bool(poller.poll(0))


def exchange(port: int, head: bytes, chunks=()) -> tuple[int | None, bytes]:
    """Send a request's head (and body chunks, until an answer comes); the answer's status and body
    (None when the server closed the connection without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        try:
            connection.sendall(head)
            for chunk in chunks:
                if answered(connection):  # stop sending
                    break
                connection.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        try:
            while data := connection.recv(65536):
                received += data
        except ConnectionResetError:
            pass
    if not received.startswith(b"HTTP/1.1 "):
        return None, b""
    return int(received.split(b" ", 2)[1]), received.partition(b"\r\n\r\n")[2]


def head(method: str, path: str, *fields: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *fields, "", ""]).encode()


def test_a_huge_header_is_refused_before_it_is_read(web):
    status, body = exchange(web, head("GET", "/api/health/", "X-Big: " + "a" * 16_000_000))
    assert (status, body) == (431, b"The request's head is larger than the limit of 65536 bytes.")
    assert httpx.get(f"http://127.0.0.1:{web}/api/health/").status_code == 200  # and the server is fine


def test_a_head_that_never_ends_is_refused_however_slowly_it_comes(web):
    """A header line sent in many small pieces: the bound counts every read since the head began."""
    begun = b"GET /api/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    status, _ = exchange(web, begun, chunks=[b"a" * 4096] * 40)
    assert status == 431


def test_a_body_is_not_counted_as_head_when_the_head_came_in_pieces(web):
    """The end of a head and a body past the head's bound arrive together: the body is the request's, and the
    request reaches the service (which refuses it unauthenticated), not the head's bound."""
    first = b"POST /api/v1/schedule/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    rest = b"Content-Type: application/json\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n"
    status, body = exchange(web, first, chunks=[rest + b" " * 200_000])
    assert status == 401, body


def test_a_head_within_the_bound_reaches_the_service_whose_own_bound_answers_in_its_format(web):
    fields = [f"X-Field-{n}: {'a' * 500}" for n in range(60)]  # about 31 KB of header fields
    status, body = exchange(web, head("GET", "/api/v1/schedule/", *fields))
    assert status == 431 and json.loads(body)["detail"].startswith("The header fields are too large"), body


def test_requests_sent_together_on_one_connection_are_each_answered(web):
    two = head("GET", "/api/health/").replace(b"Connection: close", b"Connection: keep-alive") + head(
        "GET", "/api/health/"
    )
    with socket.create_connection(("127.0.0.1", web), timeout=30) as connection:
        connection.sendall(two)
        received = b""
        while data := connection.recv(65536):
            received += data
    assert received.count(b"HTTP/1.1 200 OK") == 2, received


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/cache/news?key=k", {"message": "The header fields are too large: at most 16384 bytes together "
                                          "(MAX_REQUEST_HEADER_BYTES)."}),
        ("/api/v1/schedule/", {"detail": "The header fields are too large: at most 16384 bytes together "
                                         "(MAX_REQUEST_HEADER_BYTES)."}),
        ("/jobs.json", {"error": {"headers": "The header fields are too large: at most 16384 bytes together "
                                             "(MAX_REQUEST_HEADER_BYTES)."}}),
    ],
)  # fmt: skip
def test_large_header_fields_are_a_431_in_the_faces_format(web, path, body):
    response = httpx.get(f"http://127.0.0.1:{web}{path}", headers={"X-Big": "a" * 20_000})
    assert (response.status_code, response.json()) == (431, body)


def test_too_many_header_fields_are_a_431(web):
    response = httpx.get(f"http://127.0.0.1:{web}/topics/chat/room", headers={f"X-{n}": "v" for n in range(101)})
    assert (response.status_code, response.json()) == (
        431,
        {"message": "Too many header fields: at most 100 (MAX_REQUEST_HEADERS)."},
    )


@pytest.mark.parametrize(
    ("method", "path", "content_type", "length", "body"),
    [
        ("POST", "/api/v1/schedule/", "application/json", 300_000_000,
         {"detail": "The request body is larger than the limit of 2621440 bytes (MAX_REQUEST_BODY_BYTES)."}),
        ("POST", "/api/v1/binarycontent/", "multipart/form-data; boundary=x", 300_000_000,
         {"detail": "The request body is larger than the limit of 10551296 bytes (MAX_UPLOAD_BYTES)."}),
        ("POST", "/jobs.json", "application/json", 3_000_000,
         {"error": {"body": "The request body is larger than the limit of 2621440 bytes (MAX_REQUEST_BODY_BYTES)."}}),
        ("PUT", "/cache/news?key=k&ttl_seconds=5", "application/octet-stream", 300_000_000,
         {"message": "The request body is larger than the limit of 10551296 bytes (MAX_UPLOAD_BYTES)."}),
        ("POST", "/topics/chat/room", "text/plain", 65_537,
         {"message": "The message is larger than the limit of 65536 bytes (TOPICS_MAX_MESSAGE_BYTES)."}),
    ],
)  # fmt: skip
def test_a_declared_body_over_the_limit_is_a_413_before_authentication(web, method, path, content_type, length, body):
    status, answer = exchange(web, head(method, path, f"Content-Type: {content_type}", f"Content-Length: {length}"))
    assert (status, json.loads(answer)) == (413, body)


def test_a_chunked_body_is_counted_and_refused_past_the_limit(web):
    request = head("POST", "/api/v1/schedule/", "Content-Type: application/json", "Transfer-Encoding: chunked")
    chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"  # 64 KiB a chunk: the limit is passed at the 41st
    status, answer = exchange(web, request, [chunk] * 200)
    assert (status, json.loads(answer)) == (
        413,
        {"detail": "The request body is larger than the limit of 2621440 bytes (MAX_REQUEST_BODY_BYTES)."},
    )


def test_requests_within_the_bounds_are_answered_as_before(web):
    within = httpx.post(f"http://127.0.0.1:{web}/api/v1/schedule/", json={"x": "a" * 1000}, headers={"X-A": "b" * 8000})
    assert within.status_code == 401
    chunked = httpx.put(f"http://127.0.0.1:{web}/cache/news?key=k&ttl_seconds=5", content=iter([b"a" * 1000]))
    assert chunked.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("size", ["\u0661\u0662", "1_0", "\u00b2", " 12"])
def test_a_page_size_of_anything_but_ascii_digits_is_a_400(writer, size):
    response = writer.get("/api/v1/schedule/", {"page_size": size})
    assert response.status_code == 400
    assert "page_size" in response.json()
