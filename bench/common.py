"""What the service benchmarks share: a service environment of its own, its set-up, its processes, its table,
and the capacity of a local sink (wrk), the baseline the service's sends are measured against.

Run as scripts, the benchmarks have bench/ on the path; importing this module puts the
repository's root there too, for the harness (ports, waits, process groups).
"""

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# Where tables are written; a smoke run (`make bench-smoke`) writes elsewhere, keeping the recorded ones.
RESULTS = ROOT / os.environ.get("BENCH_RESULTS_DIR", "bench/results")
PYTHON = sys.executable
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.processes import Process  # noqa: E402 - needs the root on the path, above
from harness.waiting import wait_for_http, wait_until  # noqa: E402


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


def fresh_database(name: str, server: str = "postgresql://postgres@127.0.0.1:5432") -> None:
    """The database `name`, empty: each run starts from nothing, not from what an earlier run
    left (records encrypted under that run's keys, say)."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def prepare_service(environment: dict[str, str], *, cache: str, scope: str) -> str:
    """A fresh database, migrated, with `cache`; a new token with `scope`."""
    fresh_database(environment["DATABASE_URL"].rsplit("/", 1)[1])

    def manage(*args: str) -> str:
        return subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
        ).stdout

    manage("migrate", "--noinput", "-v0")
    manage("createcache", cache)
    return manage("createtoken", "bench@example.org", "--scope", scope).strip().splitlines()[-1]


# uvicorn's HTTP protocols: the Procfile's (httptools with a bound on request heads, `core.server`), uvicorn's
# default (httptools alone), or h11 with its own bound on heads.
HTTP_PARSERS = {
    "procfile": ["--http", "core.server:BoundedHttpToolsProtocol"],
    "httptools": [],
    "h11": ["--http", "h11", "--h11-max-incomplete-event-size", "65536"],
}


def start_uvicorn(
    app: str, port: int, *, env: dict[str, str], workers: int = 1, http: str = "procfile", **options
) -> Process:
    """`app` under uvicorn on 127.0.0.1:`port` (as the Procfile runs it, quieter), once it answers."""
    command = [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--lifespan", "off", "--no-access-log", "--log-level", "warning", "--backlog", "4096"]
    command += HTTP_PARSERS[http]
    process = Process(app, command, env=env, **options).start()
    wait_for_http(f"http://127.0.0.1:{port}/", status=None, timeout=30, what=f"{app} to answer")
    return process


def celery_worker(*options: str) -> list[str]:
    """The command of a Celery worker of the service, with `options` (pool, concurrency, name...)."""
    return [PYTHON, "-m", "celery", "-A", "config", "worker", "--loglevel=WARNING", *options]


def wait_for_workers(app, count: int, *, timeout: float = 60) -> None:
    """Wait until `count` Celery workers of `app` answer a ping."""
    wait_until(
        lambda: len(app.control.ping(timeout=0.5)) >= count, what=f"{count} Celery workers to answer", timeout=timeout
    )


def processes_now() -> dict[int, tuple[int, str, float]]:
    """Each process now running: its parent's pid, its name (comm) and the CPU seconds (user + system) used by it
    and by those of its children that have ended (and were waited for: a PostgreSQL backend that closed, a prefork
    child that was replaced), so that a process ending between two readings does not take its CPU with it."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, fields = (entry / "stat").read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, ValueError):  # ended meanwhile
            continue
        fields = fields.split()
        used = sum(int(field) for field in fields[11:15])  # utime, stime, cutime, cstime
        found[int(entry.name)] = (int(fields[1]), name, used / ticks)
    return found


def cpu_seconds(pid: int, processes: dict[int, tuple[int, str, float]] | None = None) -> float:
    """CPU seconds (user + system) used so far by process `pid` and every process below it (a prefork
    worker's pool, say), in `processes` (`processes_now()` by default), those that have ended included."""
    processes = processes_now() if processes is None else processes
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(child)
    total, below = 0.0, [pid]
    while below:
        current = below.pop()
        total += processes[current][2] if current in processes else 0.0
        below += children.get(current, [])
    return total


def cpu_seconds_named(name: str, processes: dict[int, tuple[int, str, float]] | None = None) -> float:
    """CPU seconds used so far by every process named `name` (`postgres`: the server and its backends), in
    `processes` (`processes_now()` by default)."""
    processes = processes_now() if processes is None else processes
    return sum(used for _, comm, used in processes.values() if comm == name)


def find_wrk() -> str:
    """The path of wrk, the load generator that measures a sink's capacity; exits saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is not installed: it measures the sink's capacity, the baseline of this benchmark. "
            "Install it with `apt-get install wrk` (the CI script does)."
        )
    return path


def _lua_string(value: str | bytes) -> str:
    """`value` as a Lua string literal: printable ASCII as is, every other byte (and quote, backslash) as \\ddd."""
    data = value.encode() if isinstance(value, str) else value
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\{b:03d}" for b in data) + '"'


def sink_capacity(
    url: str, *, body: bytes, headers: dict[str, str], seconds: int, connections: int, method: str = "POST"
) -> float:
    """How many requests/s the sink at `url` answers: wrk (2 threads) keeps `connections` connections alive and
    busy for `seconds` with the request `method` `url` carrying `headers` and `body`.

    Fails if any answer is not 2xx or 3xx, or a connection could not be made: the figure would not be the
    sink's capacity for that request.
    """
    lines = [f"wrk.method = {_lua_string(method)}", f"wrk.body = {_lua_string(body)}"]
    lines += [f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}" for name, value in headers.items()]
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        script = Path(folder) / "request.lua"
        script.write_text("\n".join(lines) + "\n")
        command = [find_wrk(), "-t2", f"-c{connections}", f"-d{max(1, int(seconds))}s", "-s", str(script), url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    output = done.stdout + done.stderr
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if done.returncode != 0 or rate is None:
        raise RuntimeError(f"wrk failed on {url} (exit {done.returncode}):\n{output}")
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    connect = re.search(r"Socket errors: connect (\d+)", output)
    if failed or (connect and int(connect.group(1))):
        raise RuntimeError(f"The sink at {url} did not answer wrk's requests as it answers the service's:\n{output}")
    return float(rate.group(1))


def ratio(rate: float | None, capacity: float) -> str:
    """`rate` as a share of the sink's `capacity`: "0.21 of the sink's capacity"."""
    if rate is None or not capacity:
        return "- of the sink's capacity"
    return f"{rate / capacity:.2f} of the sink's capacity"


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"


def heading(title: str, setup: str) -> list[str]:
    """The first lines of a results table: `title` and the time, then the machine and `setup`."""
    return [f"{title} - {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", f"Machine: {machine()}{setup}"]


def write_results(name: str, text: str, *, stamp: str = "%Y%m%d-%H%M") -> Path:
    """Print the results table and write it to bench/results/<name>-<date and minute>.md (a later run of the same
    day is kept beside it, not written over it)."""
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC):{stamp}}.md"
    path.write_text(text)
    print(f"Written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path
