# ruff: noqa: S603, S607 - runs nginx, openssl, bash and the service's own commands, found on PATH
"""Run the production topology on loopback and check it end to end, through the proxy.

    .venv/bin/python deploy/topology.py [--keep-logs]

Starts, as docs/deploy.md describes: nginx (HTTPS with a throw-away certificate, and
its plain-HTTP redirect; deploy/nginx.conf.template filled in) in front of 2 web
processes, 2 Celery workers and 1 scheduler, with the production security settings,
on a PostgreSQL database of its own (`topology`, created and dropped) and Redis
database 13 (flushed before and after). A local message sender and a local job
target record what reaches them. Each check prints PASS or FAIL; the exit status is
non-zero when one fails. Everything started is stopped at the end, and the output is
written to deploy/results/.
"""

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "topology"
REDIS_URL = "redis://127.0.0.1:6379/13"
WEB_PROCESSES = 2
WORKERS = 2
LONG_POLL_SECONDS = 30  # TOPICS_LONG_POLL_SECONDS's default, kept: the proxy must outlast it
CACHE_MAX_ITEM_BYTES = 5 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CheckFailed(Exception):
    pass


def expect(condition: object, message: object) -> None:
    """Fail the check in progress, saying `message`, unless `condition` holds."""
    if not condition:
        raise CheckFailed(str(message))


class Report:
    """Prints each line as it comes and keeps it for deploy/results/."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.results: list[tuple[str, bool, str]] = []

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def check(self, name: str, run: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail, ok = run(), True
        except Exception as error:  # a check that raises is a failed check, with its reason
            detail, ok = f"{type(error).__name__}: {error}", False
            if not isinstance(error, CheckFailed | httpx.HTTPError | TimeoutError):
                self.lines.append(traceback.format_exc())
        self.results.append((name, ok, detail))
        self.say(f"{'PASS' if ok else 'FAIL'}  {name} ({time.monotonic() - started:.1f} s): {detail}")
        return ok


# --- Local peers: the message sender and a job target ------------------------------


class Recorder(ThreadingHTTPServer):
    """An HTTP server that records every request and answers 201 {"id": ...}."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, matches: Callable[[dict], bool], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [request for request in self.requests if matches(request)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise TimeoutError(f"nothing matching arrived within {timeout:g} s")

    def matching(self, matches: Callable[[dict], bool]) -> list[dict]:
        with self.lock:
            return [request for request in self.requests if matches(request)]


class RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {name.lower(): value for name, value in self.headers.items()},
                    "body": body,
                    "at": time.time(),
                }
            )
            number = len(self.server.requests)
        answer = json.dumps({"id": number}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self) -> None:  # the names http.server calls
        self._record()

    def do_POST(self) -> None:
        self._record()

    def do_PUT(self) -> None:
        self._record()

    def log_message(self, *args) -> None:
        pass


# --- The topology ------------------------------------------------------------------


def procfile() -> dict[str, str]:
    """The Procfile's commands, by process type."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if ":" in line and not line.startswith("#"):
            name, command = line.split(":", 1)
            commands[name.strip()] = command.strip()
    return commands


def documented_https_settings() -> dict[str, str]:
    """The HTTPS settings of the documented production environment (deploy/production.env.example)."""
    lines = (ROOT / "deploy" / "production.env.example").read_text().splitlines()
    pairs = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {
        name: value for name, value in pairs.items() if name.startswith(("SECURE_", "SESSION_COOKIE_", "CSRF_COOKIE_"))
    }


def render_nginx_site(values: dict[str, str]) -> str:
    text = (DEPLOY / "nginx.conf.template").read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    if "@" in "".join(line.split("#")[0] for line in text.splitlines()):
        raise ValueError("a placeholder of deploy/nginx.conf.template was left unfilled")
    return text


NGINX_MAIN = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/logs/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;  # each server of the site logs as it says
    client_body_temp_path {tmp}/nginx/body;
    proxy_temp_path {tmp}/nginx/proxy;
    fastcgi_temp_path {tmp}/nginx/fastcgi;
    uwsgi_temp_path {tmp}/nginx/uwsgi;
    scgi_temp_path {tmp}/nginx/scgi;
    include {tmp}/sbm.conf;
}}
"""


class Topology:
    def __init__(self, report: Report, tmp: Path) -> None:
        self.report = report
        self.tmp = tmp
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.http_port = free_port()
        self.https_port = free_port()
        self.web_ports = [free_port() for _ in range(WEB_PROCESSES)]
        self.base = f"https://127.0.0.1:{self.https_port}"
        self.sender = Recorder()
        self.target = Recorder()
        self.database_created = False
        self.env = {
            **{key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"},
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            # Production settings (docs/deploy.md), on loopback.
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "JOBS_SIGNING_KEY": secrets.token_urlsafe(32),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": self.base,
            **documented_https_settings(),
            "DATABASE_URL": f"{POSTGRES.replace('postgresql', 'postgres')}/{DATABASE}",
            "REDIS_URL": REDIS_URL,
            "MEDIA_ROOT": str(tmp / "media"),
            "MESSAGE_SENDER_URL": self.sender.url,
            "MESSAGE_SENDER_TOKEN": "topology-sender-token",
            "SEND_MEDIA_BASE_URL": self.base,
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",  # the job target is on loopback here
            "TOPICS_LONG_POLL_SECONDS": str(LONG_POLL_SECONDS),
            "WEB_CONCURRENCY": "1",
            "WORKER_CONCURRENCY": "2",
            "LOG_LEVEL": "INFO",
        }
        for name in ("SECURE_REFERRER_POLICY", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER"):
            self.env.pop(name, None)

    # --- set-up ---

    def manage(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def prepare_storage(self) -> None:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        self.database_created = True
        redis.Redis.from_url(REDIS_URL).flushdb()

    def certificate(self) -> None:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-keyout", str(self.tmp / "tls.key"), "-out", str(self.tmp / "tls.crt"),
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self, name: str, command: str, **env: str) -> subprocess.Popen:
        log = open(self.tmp / "logs" / f"{name}.log", "wb")  # noqa: SIM115 - the child holds it from here
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its children too
        )
        log.close()
        self.processes.append((name, process))
        return process

    def start_processes(self) -> None:
        commands = procfile()
        for number, port in enumerate(self.web_ports, 1):
            # The Procfile's command, on loopback only.
            self.start(f"web{number}", commands["web"].replace("0.0.0.0", "127.0.0.1"), PORT=str(port))  # noqa: S104
        for number in range(1, WORKERS + 1):
            self.start(f"worker{number}", f"{commands['worker']} -n worker{number}@%h")
        self.start("scheduler", commands["scheduler"])

        (self.tmp / "nginx").mkdir()
        (self.tmp / "media").mkdir()
        site = render_nginx_site(
            {
                "UPSTREAM_SERVERS": "\n".join(f"    server 127.0.0.1:{port};" for port in self.web_ports),
                "HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
                "HTTPS_LISTEN": f"127.0.0.1:{self.https_port}",
                "HTTPS_PORT_SUFFIX": f":{self.https_port}",
                "SERVER_NAME": "localhost 127.0.0.1",
                "TLS_CERTIFICATE": str(self.tmp / "tls.crt"),
                "TLS_CERTIFICATE_KEY": str(self.tmp / "tls.key"),
                "MEDIA_ROOT": str(self.tmp / "media"),
                "ACCESS_LOG": str(self.tmp / "logs" / "nginx-access.log"),
            }
        )
        (self.tmp / "sbm.conf").write_text(site)
        (self.tmp / "nginx.conf").write_text(NGINX_MAIN.format(tmp=self.tmp))
        nginx = ["nginx", "-e", str(self.tmp / "logs" / "nginx-error.log"), "-c", str(self.tmp / "nginx.conf")]
        test = subprocess.run([*nginx, "-t"], capture_output=True, text=True, check=False)
        if test.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{test.stderr}")
        self.start("nginx", " ".join(nginx))

    def wait_until_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        pending = {f"web{number}": port for number, port in enumerate(self.web_ports, 1)}
        while time.monotonic() < deadline:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} stopped (exit {process.returncode}); see its log below.")
            for name, port in list(pending.items()):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/api/health/", timeout=2).status_code == 200:
                        del pending[name]
            if not pending:
                with contextlib.suppress(httpx.HTTPError):
                    if self.client().get("/api/health/").status_code == 200:
                        return
            time.sleep(0.3)
        raise TimeoutError(f"the service did not come up within {timeout:g} s")

    def client(self, **kwargs) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.tmp / "tls.crt"))
        return httpx.Client(base_url=self.base, verify=context, timeout=kwargs.pop("timeout", 60), **kwargs)

    # --- tear-down ---

    def stop(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.report.say(f"{name} did not stop within 30 s of SIGTERM: killed.")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its group
            process.wait()
        for server in (self.sender, self.target):
            server.shutdown()
            server.server_close()
        if self.database_created:
            with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        redis.Redis.from_url(REDIS_URL).flushdb()

    def log_tails(self, lines: int = 25) -> list[str]:
        out = []
        for path in sorted((self.tmp / "logs").glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out += [f"--- {path.name} (last {len(tail)} lines)", *tail]
        return out


# --- The checks ------------------------------------------------------------------


SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        expect(response.headers.get(name) == value, f"{name}: {response.headers.get(name)!r}")


class Checks:
    def __init__(self, topology: Topology, report: Report) -> None:
        self.topology = topology
        self.report = report
        self.http = topology.client()
        self.token = ""
        self.auth: dict[str, str] = {}

    def run(self) -> None:
        check = self.report.check
        check("check --deploy with the production settings", self.check_deploy)
        check("health through the proxy, over HTTPS, with the security headers", self.health)
        self.token = self.topology.manage("createtoken", "ops@example.org", "--superuser").strip().splitlines()[-1]
        self.auth = {"Authorization": f"Token {self.token}"}
        check("a cache for the cache and topics checks, created through the REST API", self.cache_create)
        check("plain HTTP is redirected to HTTPS", self.redirect)
        check(f"{WORKERS} Celery workers answer a ping", self.workers)
        idle_poll = BackgroundCall(self.idle_long_poll)  # runs while the other checks do
        check("schedule fire: POST schedule/{id}/send/ reaches the message sender", self.schedule_fire)
        check("cache round trip (1 MiB item) through the proxy", self.cache_round_trip)
        check("cache item over CACHE_MAX_ITEM_BYTES: the service's 400, not nginx's 413", self.cache_too_large)
        check("topic subscribe as SSE: the event arrives while the stream is open", self.topic_sse)
        check("topic long poll answers as soon as a message is published", self.topic_long_poll)
        check("delayed job calls its local target, then its callback", self.delayed_job)
        check("binary content upload, its file served by nginx from MEDIA_ROOT", self.media)
        check("the scheduler fires the schedule by itself at its next minute", self.scheduler_fires)
        check(
            f"idle long poll ends with {{'items': []}} after {LONG_POLL_SECONDS} s, not a proxy timeout",
            idle_poll.result,
        )
        check(f"requests reached all {WEB_PROCESSES} web processes", self.both_web_processes)
        check("no token in nginx's access log (query strings are not logged)", self.no_token_logged)
        self.report.say()
        self.report.say(self.connections())

    # Each check returns what it saw, or raises.

    def check_deploy(self) -> str:
        output = self.topology.manage("check", "--deploy", "--fail-level", "WARNING")
        return output.strip()

    def health(self) -> str:
        response = self.http.get("/api/health/")
        expect(response.status_code == 200, response.text)
        expect(response.json()["up"] is True, response.text)
        assert_security_headers(response)
        return f"200 {response.json()['result']}; HSTS, nosniff, Referrer-Policy, X-Frame-Options present"

    def redirect(self) -> str:
        url = f"http://127.0.0.1:{self.topology.http_port}/api/v1/schedule/?page_size=1"
        response = httpx.get(url, headers=self.auth, timeout=10)
        expect(response.status_code == 301, response.status_code)
        location = response.headers["location"]
        expect(location == f"{self.topology.base}/api/v1/schedule/?page_size=1", location)
        return f"301 -> {location}"

    def workers(self) -> str:
        done = subprocess.run(
            [PYTHON, "-m", "celery", "-A", "config", "inspect", "ping", "--timeout", "5", "--json"],
            cwd=ROOT, env=self.topology.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        answers = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        names = sorted(answers)
        expect(len(names) == WORKERS, f"answers: {names} {done.stderr[-500:]}")
        return ", ".join(names)

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = self.http.request(method, f"/api/v1/{path}", headers=self.auth, **kwargs)
        expect(response.status_code in (200, 201, 202), f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def schedule_fire(self) -> str:
        # Far enough from the minute's end that this fire counts for this minute's period
        # (a fire up to 5 s before a run time counts for that run time).
        if datetime.now(UTC).second >= 50:
            time.sleep(61 - datetime.now(UTC).second)
        schedule = self.api("POST", "schedule/", json={"minute": "*", "hour": "*"})
        messageset = self.api(
            "POST",
            "messageset/",
            json={"short_name": "topology", "label": "Topology", "default_schedule": schedule["id"], "channel": "sms"},
        )
        for number in (1, 2):
            self.api(
                "POST",
                "message/",
                json={
                    "messageset": messageset["id"],
                    "sequence_number": number,
                    "lang": "eng",
                    "text_content": f"Message {number} of the topology run",
                },
            )
        self.identity = str(uuid.uuid4())
        self.subscription = self.api(
            "POST",
            "subscriptions/",
            json={"identity": self.identity, "messageset": messageset["id"], "lang": "eng", "schedule": schedule["id"]},
        )
        self.schedule_id = schedule["id"]
        fired = time.time()
        answer = self.api("POST", f"schedule/{schedule['id']}/send/")
        expect(answer == {"accepted": True}, answer)
        got = self.topology.sender.wait_for(lambda r: b"Message 1 " in r["body"], timeout=30)
        payload = json.loads(got["body"])
        expect(got["path"] == "/outbound/", got["path"])
        expect(payload["to_identity"] == self.identity, payload)
        expect(
            got["headers"].get("authorization") == "Token topology-sender-token",
            f"Authorization: {got['headers'].get('authorization')!r}",
        )
        key = got["headers"]["idempotency-key"]
        expect(key == f"{self.subscription['id']}:1", key)
        return (
            f"POST /outbound/ {payload['content']!r}, Idempotency-Key {key}, {got['at'] - fired:.2f} s after the fire"
        )

    def scheduler_fires(self) -> str:
        deadline = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        got = self.topology.sender.wait_for(
            lambda r: b"Message 2 " in r["body"], timeout=max((deadline - datetime.now(UTC)).total_seconds(), 1)
        )
        fired_at = datetime.fromtimestamp(got["at"], UTC)
        keys = [r["headers"]["idempotency-key"] for r in self.topology.sender.matching(lambda r: True)]
        expect(sorted(keys) == sorted(set(keys)), f"a key arrived twice: {keys}")
        subscription = self.api("GET", f"subscriptions/{self.subscription['id']}/")
        expect(subscription["completed"] is True, subscription)
        return (
            f"message 2 at {fired_at:%H:%M:%S.%f}"[:-3]
            + f" UTC ({fired_at.second + fired_at.microsecond / 1e6:.1f} s past the minute); "
            f"each Idempotency-Key once ({', '.join(sorted(keys))}); the subscription completed"
        )

    def cache_create(self) -> str:
        response = self.http.put("/api/v1/caches/topology", headers=self.auth)
        expect(response.status_code == 201, response.text)
        return f"PUT /api/v1/caches/topology: 201 {response.json()}"

    def cache_round_trip(self) -> str:
        value = secrets.token_bytes(1024 * 1024)
        stored = self.http.put(
            "/cache/topology", params={"key": "blob", "ttl_seconds": "60"}, content=value, headers=self.auth
        )
        expect(stored.status_code == 204, stored.text)
        got = self.http.get("/cache/topology", params={"key": "blob"}, headers=self.auth)
        expect(got.status_code == 200, got.text)
        expect(got.content == value, "the value read back differs")
        assert_security_headers(got)
        expect(got.headers.get("cache-control") == "no-store", f"Cache-Control: {got.headers.get('cache-control')!r}")
        return f"PUT 204, GET 200 with the same {len(got.content)} bytes; security headers and no-store present"

    def cache_too_large(self) -> str:
        value = b"x" * CACHE_MAX_ITEM_BYTES
        response = self.http.put(
            "/cache/topology", params={"key": "big", "ttl_seconds": "60"}, content=value, headers=self.auth
        )
        expect(response.status_code == 400, f"{response.status_code} {response.text[:200]}")
        return f"400 {response.json()['message']!r}"

    def topic_sse(self) -> str:
        events: list[tuple[float, str]] = []
        opened = threading.Event()
        client = self.topology.client(timeout=httpx.Timeout(60, read=60))

        def read() -> None:
            headers = {**self.auth, "Accept": "text/event-stream"}
            with client.stream("GET", "/topics/topology/news", headers=headers) as stream:
                if stream.status_code != 200:
                    return
                for line in stream.iter_lines():
                    if line.startswith(": connected"):
                        opened.set()
                    if line.startswith("data:"):
                        events.append((time.time(), line))
                        return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        expect(opened.wait(10), "the stream's first comment did not arrive through the proxy")
        published = time.time()
        response = self.http.post(
            "/topics/topology/news", content=b"hello over SSE", headers={**self.auth, "Content-Type": "text/plain"}
        )
        expect(response.status_code == 204, response.text)
        reader.join(10)
        client.close()
        expect(events, "no event arrived within 10 s")
        received, line = events[0]
        message = json.loads(line.removeprefix("data:").strip())
        expect(message["value"] == {"text": "hello over SSE"}, message)
        delay = 1000 * (received - published)
        return f"event {message['topic_sequence_number']} received {delay:.0f} ms after the publish"

    def topic_long_poll(self) -> str:
        poll = BackgroundCall(
            lambda: self.http.get("/topics/topology/news", params={"sequence_number": "0"}, headers=self.auth)
        )
        time.sleep(1)
        published = time.time()
        response = self.http.post(
            "/topics/topology/news",
            content=b"hello over long poll",
            headers={**self.auth, "Content-Type": "text/plain"},
        )
        expect(response.status_code == 204, response.text)
        answer = poll.result(timeout=20)
        answered = time.time()
        expect(answer.status_code == 200, answer.text)
        items = answer.json()["items"]
        expect(items and items[-1]["item"]["value"] == {"text": "hello over long poll"}, items)
        return f"{len(items)} item(s), answered {1000 * (answered - published):.0f} ms after the publish"

    def idle_long_poll(self) -> str:
        started = time.monotonic()
        with self.topology.client(timeout=LONG_POLL_SECONDS + 30) as client:
            response = client.get("/topics/topology/idle", params={"sequence_number": "0"}, headers=self.auth)
        waited = time.monotonic() - started
        expect(response.status_code == 200, f"{response.status_code} {response.text[:200]}")
        expect(response.json() == {"items": []}, response.text)
        expect(waited >= LONG_POLL_SECONDS - 1, f"answered after {waited:.1f} s")
        return f"200 {{'items': []}} after {waited:.1f} s"

    def delayed_job(self) -> str:
        at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        target = self.topology.target.url
        response = self.http.post(
            "/jobs.json",
            headers=self.auth,
            data={
                "job[uri]": f"{target}/hook?run=topology",
                "job[at]": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "job[method]": "POST",
                "job[body]": '{"hello": "job"}',
                "job[headers][Content-Type]": "application/json",
                "job[callback_uri]": f"{target}/done",
            },
        )
        expect(response.status_code == 200, response.text)
        job = response.json()["success"]["job"]
        hit = self.topology.target.wait_for(lambda r: r["path"].startswith("/hook"), timeout=30)
        lateness = hit["at"] - at.timestamp()
        expect(hit["body"] == b'{"hello": "job"}', hit["body"])
        expect(hit["headers"].get("job-signature", "").startswith("t="), hit["headers"])
        callback = self.topology.target.wait_for(lambda r: r["path"] == "/done", timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            state = self.http.get(f"/jobs/{job['id']}.json", headers=self.auth).json()["success"]["job"]["state"]
            if state == "succeeded":
                break
            time.sleep(0.2)
        expect(state == "succeeded", state)
        return (
            f"target called {lateness * 1000:.0f} ms after `at`, signed ({hit['headers']['job-signature'][:14]}...); "
            f"callback {callback['at'] - hit['at']:.2f} s later; job {state}"
        )

    def media(self) -> str:
        png = bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
        )
        response = self.http.post(
            "/api/v1/binarycontent/", headers=self.auth, files={"content": ("dot.png", png, "image/png")}
        )
        expect(response.status_code == 201, response.text)
        url = response.json()["content"]
        expect(url.startswith(f"{self.topology.base}/media/"), url)
        got = self.http.get(url.removeprefix(self.topology.base))
        expect(got.status_code == 200 and got.content == png, got.status_code)
        expect(got.headers.get("server", "").startswith("nginx"), got.headers.get("server"))
        return f"{url.removeprefix(self.topology.base)}: 200, {len(got.content)} bytes, served by nginx"

    def no_token_logged(self) -> str:
        # The checks above pass the token in headers; this one passes it in the query string.
        self.http.get("/cache/topology", params={"key": "blob", "token": self.token})
        log = (self.topology.tmp / "logs" / "nginx-access.log").read_text()
        expect(self.token not in log, "the token is in nginx's access log")
        return f"{len(log.splitlines())} requests logged, none with the token"

    def connections(self) -> str:
        """What the topology holds open at the end: figures for sizing PostgreSQL and Redis."""
        with psycopg.connect(f"{POSTGRES}/postgres") as connection:
            row = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [DATABASE]).fetchone()
        clients = redis.Redis.from_url(REDIS_URL).client_list()
        in_db = sum(1 for client in clients if client.get("db") == REDIS_URL.rsplit("/", 1)[1])
        return (
            f"Open at the end: {row[0]} PostgreSQL connections to {DATABASE}, {in_db} Redis connections on db 13 "
            f"({WEB_PROCESSES} web processes, {WORKERS} workers of WORKER_CONCURRENCY=2, 1 scheduler, "
            "after the checks above)."
        )

    def both_web_processes(self) -> str:
        log = (self.topology.tmp / "logs" / "nginx-access.log").read_text()
        counts = {port: log.count(f"upstream=127.0.0.1:{port}") for port in self.topology.web_ports}
        expect(all(counts.values()), counts)
        return ", ".join(f"127.0.0.1:{port}: {count} requests" for port, count in counts.items())


class BackgroundCall:
    """`call()` in a thread; `result()` waits for what it returned, or raises what it raised."""

    def __init__(self, call: Callable) -> None:
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Callable) -> None:
        try:
            self.value = call()
        except Exception as error:  # handed to the caller of result()
            self.error = error

    def result(self, timeout: float = 120):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"no answer within {timeout:g} s")
        if self.error is not None:
            raise self.error
        return self.value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-logs", action="store_true", help="print every process's log tail even on success")
    args = parser.parse_args()
    report = Report()
    if shutil.which("nginx") is None:
        print("nginx is not installed: apt-get install -y nginx", file=sys.stderr)
        return 2
    if shutil.which("openssl") is None:
        print("openssl is not installed: apt-get install -y openssl", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="sbm-topology-"))
    tmp.chmod(0o755)  # nginx's workers (another user when started as root) read the media and write temp files
    (tmp / "logs").mkdir()
    topology = Topology(report, tmp)
    started = time.monotonic()
    report.say(f"# Topology run, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    report.say()
    report.say(
        f"nginx https://127.0.0.1:{topology.https_port} (redirect from http://127.0.0.1:{topology.http_port}) -> "
        f"web {', '.join(f'127.0.0.1:{port}' for port in topology.web_ports)}; {WORKERS} workers; 1 scheduler; "
        f"PostgreSQL database {DATABASE}; {REDIS_URL}; message sender {topology.sender.url}; "
        f"job target {topology.target.url}"
    )
    report.say()
    failed_to_start = False
    try:
        topology.prepare_storage()
        topology.certificate()
        topology.manage("migrate", "--noinput", "-v0")
        topology.manage("collectstatic", "--noinput", "-v0")
        topology.start_processes()
        topology.wait_until_up()
        report.say(f"Up after {time.monotonic() - started:.1f} s (migrate, collectstatic, start).")
        report.say()
        Checks(topology, report).run()
    except Exception:
        failed_to_start = True
        report.say("The run stopped:")
        report.say(traceback.format_exc())
    finally:
        passed = sum(ok for _, ok, _ in topology.report.results)
        failed = failed_to_start or passed < len(report.results) or not report.results
        if failed or args.keep_logs:
            report.say()
            for line in topology.log_tails():
                report.say(line)
        topology.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        report.say()
        report.say(
            f"{passed} of {len(report.results)} checks passed in {time.monotonic() - started:.0f} s; "
            f"every process stopped, database {DATABASE} dropped, Redis db 13 flushed."
        )
        results = DEPLOY / "results"
        results.mkdir(exist_ok=True)
        path = results / f"topology-{datetime.now(UTC):%Y%m%d-%H%M}.md"
        path.write_text("\n".join(["```", *report.lines, "```", ""]))
        print(f"Written to {path.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
