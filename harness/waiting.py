"""Free ports on loopback, and waiting for a condition with a deadline.

Every wait in the suites and scripts is bounded: `wait_until` raises a TimeoutError
that names what it waited for, so a hung run says what never came.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")

HOST = "127.0.0.1"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def poll(condition: Callable[[], T], *, timeout: float, every: float = 0.05) -> T:
    """The first truthy value of `condition()` within `timeout` seconds, else its last (falsy) value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def wait_until(condition: Callable[[], T], *, what: str, timeout: float, every: float = 0.05) -> T:
    """The first truthy value of `condition()`; TimeoutError naming `what` after `timeout` seconds."""
    value = poll(condition, timeout=timeout, every=every)
    if not value:
        raise TimeoutError(f"Gave up waiting for {what} after {timeout:g} s.")
    return value


def port_open(port: int, host: str = HOST) -> bool:
    """Whether something accepts connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def answers(url: str, status: int | None = 200) -> bool:
    """Whether `url` answers a GET (with `status`, unless it is None)."""
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return status is None or response.status_code == status


def wait_for_port(port: int, *, timeout: float = 30, what: str = "") -> None:
    wait_until(lambda: port_open(port), what=what or f"port {port} to listen", timeout=timeout)


def wait_for_http(url: str, *, timeout: float = 30, status: int | None = 200, what: str = "") -> None:
    wait_until(lambda: answers(url, status), what=what or f"{url} to answer", timeout=timeout, every=0.1)
