"""The suite's own PostgreSQL and Redis, and the service's processes, all on 127.0.0.1.

Nothing here touches the shared PostgreSQL (5432) or Redis (6379): each run starts
a PostgreSQL cluster in a temporary directory and a Redis without persistence, on
free ports, and stops them at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psycopg

from harness.processes import Process, stop_all
from harness.waiting import answers, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PYTHON = sys.executable


def _postgres_bin() -> Path:
    """The PostgreSQL server binaries: $PG_BIN, or the newest under /usr/lib/postgresql."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    if not found:
        raise RuntimeError("No PostgreSQL server binaries (initdb) found; set PG_BIN to their directory.")
    return Path(found[-1]).parent


class PrivatePostgres:
    """A throw-away PostgreSQL cluster: initdb into a temporary directory, trust auth, loopback only.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
    """

    def __init__(self, log_dir: Path):
        self.bin = _postgres_bin()
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.data = self.home / "data"
        self.log = log_dir / "postgres.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.home, "postgres", "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=timeout)

    def _pg_ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", *args)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True, connect_timeout=5
        )

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def create_database(self, name: str) -> None:
        with self.connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


class PrivateRedis:
    """A Redis without persistence: stopping it loses everything in it, as a crash would."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="faults-redis-"))
        self.log = log_dir / "redis.log"
        self.process: Process | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.home)]
        self.process = Process("redis", command, log=self.log).start()
        wait_until(self.answers, what="Redis to start", timeout=20)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process = None

    def llen(self, key: str) -> int:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
            connection.sendall(f"LLEN {key}\r\n".encode())
            return int(connection.recv(64).strip()[1:])

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def service_environment(*, postgres: PrivatePostgres, redis: PrivateRedis, **settings: str) -> dict[str, str]:
    """The environment of a production-like service process (DEBUG off, fresh secrets) on the private stores."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "DJANGO_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "IDENTITY_STORE_URL", "DRY_RUN_MESSAGESETS"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        JOBS_SIGNING_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=postgres.url("faults"),
        REDIS_URL=redis.url(0),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        **settings,
    )
    return env


class Service:
    """The web, worker and scheduler processes of the Procfile, with a token holding every scope."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.workers_started = 0
        self.web = Process(
            "web",
            [
                str(BIN / "uvicorn"),
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--lifespan",
                "off",
                "--no-server-header",
                "--no-access-log",
            ],
            env=env,
            log=log_dir / "web.log",
        )
        self.scheduler = Process(
            "scheduler",
            [PYTHON, "manage.py", "runscheduler", "--loglevel=INFO"],
            env=env,
            log=log_dir / "scheduler.log",
        )
        self.worker: Process | None = None

    def manage(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def django(self, code: str) -> str:
        """Run `code` in a Django shell of the service (for bulk set-up); its output."""
        return self.manage("shell", "--no-imports", "-c", code)

    def prepare(self) -> None:
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("createcache", "faults")
        self.token = self.manage("createtoken", "faults@example.org", "--superuser").strip().splitlines()[-1]

    def start_worker(self) -> Process:
        """A worker as the Procfile runs it (prefork, WORKER_CONCURRENCY children), under a new node name."""
        self.workers_started += 1
        self.worker = Process(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={self.env.get('WORKER_CONCURRENCY', '2')}",
                "-n",
                f"faults{self.workers_started}@%h",
            ],
            env=self.env,
            log=self.log_dir / "worker.log",
        ).start()
        wait_until(self.worker_ready, what="the worker to be ready", timeout=60, every=0.3)
        return self.worker

    def worker_ready(self) -> bool:
        """Whether the current worker has started consuming (it says `ready.` in its log)."""
        if self.worker is None or not self.worker.alive:
            raise RuntimeError(f"The worker is not running; see {self.worker and self.worker.log}")
        return "ready." in self.worker.output()

    def start(self) -> None:
        self.web.start()
        self.scheduler.start()
        self.start_worker()
        wait_until(self.healthy, what="the web process to answer /api/health/", timeout=60, every=0.3)
        wait_until(
            lambda: "Scheduler loops started:" in self.scheduler.output(),
            what="the scheduler to start",
            timeout=60,
            every=0.3,
        )

    def healthy(self) -> bool:
        return answers(f"{self.base_url}/api/health/")

    @property
    def all_alive(self) -> bool:
        """Whether web, scheduler and worker are all still the processes the test started."""
        return all(process is not None and process.alive for process in (self.web, self.scheduler, self.worker))

    def ensure_running(self) -> None:
        """Start again whatever a test left stopped (never needed when the service held up)."""
        if not self.web.alive:
            self.web.start()
        if not self.scheduler.alive:
            self.scheduler.start()
        if self.worker is None or not self.worker.alive:
            self.start_worker()
        wait_until(self.healthy, what="the service to be healthy", timeout=60, every=0.3)

    def stop(self) -> None:
        stop_all(process for process in (self.web, self.scheduler, self.worker) if process is not None)

    def client(self, timeout: float = 15) -> httpx.Client:
        """An HTTP client for the service with the all-scopes token, every wait bounded."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Token {self.token}"},
            timeout=httpx.Timeout(timeout, connect=5),
        )
