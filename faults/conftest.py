"""The fault suite's world: its own PostgreSQL and Redis, the service's three processes, its peers.

Everything listens on 127.0.0.1 and is stopped at the end of the session. The
settings below are the production defaults but for short timeouts and retry
schedules, so that each fault plays out in seconds.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.peer import RecordingPeer

from .report import RESULTS, Report
from .services import PrivatePostgres, PrivateRedis, Service, service_environment

REPORT = Report()

# The settings the faults play against (every other setting keeps its default).
SETTINGS = {
    "WORKER_CONCURRENCY": "2",
    "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",  # the peers are on loopback
    "SEND_BATCH_SIZE": "50",
    "SEND_CONCURRENCY": "8",
    "SEND_TIMEOUT": "2",
    "SEND_RETRY_DELAYS": "0.5,1",
    "SEND_BATCH_SECONDS": "60",
    "JOBS_RETRY_SCHEDULE": "2,4,6",
    "JOBS_MAX_TIMEOUT": "3",
    "JOBS_DEFAULT_TIMEOUT": "3",
    "JOBS_LEASE_SECONDS": "25",  # renewed every 8 s while a worker holds the jobs
    "JOBS_DELIVERY_CHUNK": "25",
    "REDIS_SOCKET_TIMEOUT": "2",
    "TOPICS_LONG_POLL_SECONDS": "5",
    "TOPICS_SSE_HEARTBEAT_SECONDS": "2",
    "CACHE_RATE_LIMIT_REQUESTS": "100000000",
}


@pytest.fixture(scope="session")
def log_dir() -> Path:
    path = RESULTS / "logs" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def postgres(log_dir):
    server = PrivatePostgres(log_dir)
    try:
        server.init()
        server.start()
        server.create_database("faults")
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def redis(log_dir):
    server = PrivateRedis(log_dir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def sender():
    """The message sender: POST /outbound/, keyed by Idempotency-Key."""
    peer = RecordingPeer().start()
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def target():
    """Where jobs are sent: any path, keyed by Job-Delivery-Id."""
    peer = RecordingPeer().start()
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def service(postgres, redis, sender, log_dir):
    media = tempfile.mkdtemp(prefix="faults-media-")
    env = service_environment(
        postgres=postgres,
        redis=redis,
        MESSAGE_SENDER_URL=sender.url,
        MESSAGE_SENDER_TOKEN=secrets.token_hex(16),
        MEDIA_ROOT=media,
        **SETTINGS,
    )
    running = Service(env, log_dir)
    running.prepare()
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(media, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_peers_and_running_service(service, sender, target):
    """Each scenario starts with every process up and peers that answer at once."""
    service.ensure_running()
    sender.reset()
    target.reset()
    yield
    sender.reset()
    target.reset()


@pytest.fixture
def report():
    return REPORT


def pytest_terminal_summary(terminalreporter) -> None:
    if not REPORT.scenarios:
        return
    path = REPORT.write()
    terminalreporter.write_sep("=", "fault scenarios")
    terminalreporter.write_line(REPORT.markdown())
    terminalreporter.write_line(f"Written to {path}")
