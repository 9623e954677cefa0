# ruff: noqa: S603, S607 - runs nginx, openssl and the service's own commands, found on PATH
"""Run the production topology on loopback and check it end to end, through the proxy.

    .venv/bin/python deploy/topology.py [--keep-logs]

Starts, as docs/deploy.md describes: nginx (HTTPS with a throw-away certificate, and
its plain-HTTP redirect; deploy/nginx.conf.template filled in) in front of 2 web
processes, 2 Celery workers and 1 scheduler, with the production security settings,
on a PostgreSQL database of its own (`topology`, created and dropped) and Redis
database 13 (flushed before and after). A local message sender and a local job
target record what reaches them. The checks (deploy/checks.py) print PASS or FAIL;
the exit status is non-zero when one fails. Everything started is stopped at the
end, and the output is written to deploy/results/.
"""

import argparse
import contextlib
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import redis
from checks import Checks, Report
from layout import (
    DATABASE,
    DEPLOY,
    LONG_POLL_SECONDS,
    POSTGRES,
    PYTHON,
    REDIS_URL,
    ROOT,
    VENV_BIN,
    WEB_PROCESSES,
    WORKERS,
)
from psycopg import sql

from harness.peer import RecordingPeer
from harness.processes import Processes
from harness.waiting import answers, free_port, wait_until


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
    """The processes docs/deploy.md describes, on loopback, with their stores, peers and logs in `tmp`."""

    def __init__(self, report: Report, tmp: Path) -> None:
        self.report = report
        self.tmp = tmp
        self.processes = Processes(log_dir=tmp / "logs")
        self.http_port = free_port()
        self.https_port = free_port()
        self.web_ports = [free_port() for _ in range(WEB_PROCESSES)]
        self.base = f"https://127.0.0.1:{self.https_port}"
        self.sender = RecordingPeer(status=201).start()
        self.target = RecordingPeer(status=201).start()
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

    def start(self, name: str, command: str, **env: str) -> None:
        """Start `command` as a shell line (the Procfile's form) in a process group of its own."""
        self.processes.start(name, ["bash", "-c", f"exec {command}"], env={**self.env, **env})

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
        pending = {f"web{number}": port for number, port in enumerate(self.web_ports, 1)}

        def up() -> bool:
            for process in self.processes.started:
                if not process.alive:
                    raise RuntimeError(f"{process.name} stopped (exit {process.returncode}); see its log below.")
            for name, port in list(pending.items()):
                if answers(f"http://127.0.0.1:{port}/api/health/"):
                    del pending[name]
            if pending:
                return False
            with self.client() as client, contextlib.suppress(httpx.HTTPError):
                return client.get("/api/health/").status_code == 200
            return False

        wait_until(up, what="the service to come up", timeout=timeout, every=0.3)

    def client(self, **kwargs) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.tmp / "tls.crt"))
        return httpx.Client(base_url=self.base, verify=context, timeout=kwargs.pop("timeout", 60), **kwargs)

    # --- tear-down ---

    def stop(self) -> None:
        for process in self.processes.stop_all(grace=30):
            self.report.say(f"{process.name} did not stop within 30 s of SIGTERM: killed.")
        for peer in (self.sender, self.target):
            peer.stop()
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
        report.write("topology")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
