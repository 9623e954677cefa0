import signal

import pytest

from harness.processes import Process
from harness.waiting import HOST, free_port, port_open, wait_until


class OwnRedis:
    """A Redis of a test's own (nothing kept on disk), which the test may restart or stop (SIGSTOP)."""

    def __init__(self, port: int, log) -> None:
        self.process = Process(
            "redis",
            ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
            log=log,
        )
        self.port = port

    def start(self) -> None:
        self.process.start()
        wait_until(lambda: port_open(self.port), what="Redis to listen", timeout=30)

    def restart(self) -> None:
        self.process.stop()
        self.start()

    def pause(self) -> None:
        self.process.signal_group(signal.SIGSTOP)

    def stop(self) -> None:
        self.process.signal_group(signal.SIGCONT)  # a paused Redis is let go on, so that it can stop
        self.process.stop()


@pytest.fixture
def own_redis(tmp_path, settings):
    """An OwnRedis, started; REDIS_URL points at it."""
    redis = OwnRedis(free_port(), tmp_path / "redis.log")
    redis.start()
    settings.REDIS_URL = f"redis://{HOST}:{redis.port}/0"
    yield redis
    redis.stop()
