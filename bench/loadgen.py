"""An open-loop load generator: requests at a constant rate, latency as users feel it.

wrk keeps every connection busy (a closed loop): when the server pauses, wrk pauses
with it and the requests it would have sent meanwhile are never measured, so a stall
shows in its percentiles as one slow request (coordinated omission). Here every request
has its time fixed in advance, `t0 + i / rate`, and its latency is counted from that
time, not from when it could be sent: a request that waited for a busy connection
waited as a user's would have.

The requests go over a pool of kept-alive HTTP/1.1 connections (asyncio on uvloop,
httptools parsing the answers), split over several processes when one cannot keep the
rate: connection k of a process sends that process's requests k, k + C, k + 2C...
(wrk2's model). A process sends a request late by itself (its timer, or the CPU it did
not get) when the connection was idle at the request's time: that lag is reported
apart. The run is invalid, and says so, when fewer requests were sent in the run's
time than the offered rate asks (within 3%), or when the generator's own lag reached
LAG_LIMIT_MS at the 99th percentile: its figures would then not be of that rate.

    .venv/bin/python bench/loadgen.py http://127.0.0.1:8000/cache/c?key=k --rate 2000 \
        --seconds 10 [--connections 50] [--processes 1] [--method PUT --body-size 100] \
        [--header "Authorization: <token>"]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import time
from array import array
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
import uvloop

KEPT = 0.97  # the share of the offered requests that must have been sent in the run's time
LAG_LIMIT_MS = 5.0  # the generator's own lag (99th percentile) past which its figures are not the rate's
START_DELAY = 0.05  # seconds from every process being connected to the first request's time
DRAIN_SECONDS = 10.0  # how long answers still due at the end are waited for (then counted as failed)


@dataclass(frozen=True)
class Plan:
    """What one process sends: `rate`/s for `seconds` over its `connections`, request i of all of
    them being its own when i % processes is its index."""

    host: str
    port: int
    request: bytes
    rate: float
    seconds: float
    connections: int
    processes: int
    index: int


def build_request(url: str, method: str = "GET", body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """The bytes of a kept-alive HTTP/1.1 request."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("PUT", "POST"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection(asyncio.Protocol):
    """One kept-alive connection: `ask()` sends the request and waits for the status of its answer."""

    def __init__(self, request: bytes):
        self.request = request
        self.parser = httptools.HttpResponseParser(self)
        self.waiting: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(self.parser.get_status_code())

    def connection_lost(self, exc) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_exception(ConnectionError(f"connection closed: {exc}"))

    def ask(self) -> asyncio.Future:
        self.waiting = asyncio.get_running_loop().create_future()
        self.transport.write(self.request)
        return self.waiting


async def _run_plan(plan: Plan, ready, go, start) -> tuple:
    """Connect, say so (`ready`, a barrier of every process and the parent), wait for `go`, then send
    from the time the parent gave (`start`, time.monotonic: the same clock in every process)."""
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(lambda: Connection(plan.request), plan.host, plan.port))[1]
        for _ in range(plan.connections)
    ]
    await loop.run_in_executor(None, ready.wait)
    await loop.run_in_executor(None, go.wait)
    t0 = start.value
    total = int(plan.rate * plan.seconds)
    mine = range(plan.index, total, plan.processes)  # this process's requests, by global number
    latencies, lags, times = array("d"), array("d"), array("d")
    statuses: dict[int, int] = {}
    sent_in_time = 0
    end = t0 + plan.seconds

    async def drive(connection: Connection, numbers) -> None:
        nonlocal sent_in_time
        idle_since = time.monotonic()
        for number in numbers:
            scheduled = t0 + number / plan.rate
            now = time.monotonic()
            if scheduled > now:
                await asyncio.sleep(scheduled - now)
                now = time.monotonic()
            if idle_since <= scheduled:  # the connection was free at the request's time: any delay is ours
                lags.append(now - scheduled)
            if now <= end:
                sent_in_time += 1
            try:
                status = await connection.ask()
            except ConnectionError:  # its requests not answered are counted as failed below
                return
            idle_since = time.monotonic()
            latencies.append(idle_since - scheduled)
            times.append(scheduled - t0)
            statuses[status] = statuses.get(status, 0) + 1

    numbers = list(mine)
    tasks = [drive(connection, numbers[k :: plan.connections]) for k, connection in enumerate(connections)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=t0 + plan.seconds + DRAIN_SECONDS - time.monotonic())
    failed = len(numbers) - len(latencies)  # not answered: a connection lost, or still waiting at the end
    for connection in connections:
        connection.transport.close()
    return latencies, lags, times, sent_in_time, failed, statuses


def _run_process(plan: Plan, ready, go, start, results) -> None:
    latencies, lags, times, sent, failed, statuses = uvloop.run(_run_plan(plan, ready, go, start))
    results.put((latencies.tobytes(), lags.tobytes(), times.tobytes(), sent, failed, statuses))


def percentile(ordered: list[float], share: float) -> float:
    """The value below which `share` of the sorted `ordered` lie (nearest rank)."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(share * len(ordered) + 0.5) - 1))]


def run(
    url: str,
    *,
    rate: float,
    seconds: float,
    connections: int = 50,
    processes: int = 1,
    method: str = "GET",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> dict:
    """Offer `rate` requests/s to `url` for `seconds`; the latencies (ms, from each request's
    scheduled time) at p50, p99 and p99.9, the rate achieved, the generator's own lag and
    whether the offered rate was kept (`kept`: the run is valid)."""
    parts = urlsplit(url)
    request = build_request(url, method, body, headers)
    context = multiprocessing.get_context("spawn")
    ready, go, start, results = context.Barrier(processes + 1), context.Event(), context.Value("d"), context.Queue()
    children = [
        context.Process(
            target=_run_process,
            args=(
                Plan(parts.hostname, parts.port or 80, request, rate, seconds, connections // processes, processes, i),
                ready,
                go,
                start,
                results,
            ),
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    ready.wait(timeout=60)  # every process connected
    start.value = time.monotonic() + START_DELAY
    go.set()
    answers = [results.get(timeout=seconds + DRAIN_SECONDS + 60) for _ in children]
    for child in children:
        child.join()
    latencies, lags, times = array("d"), array("d"), array("d")
    sent = failed = 0
    statuses: dict[int, int] = {}
    for raw_latencies, raw_lags, raw_times, process_sent, process_failed, process_statuses in answers:
        latencies.frombytes(raw_latencies)
        lags.frombytes(raw_lags)
        times.frombytes(raw_times)
        sent += process_sent
        failed += process_failed
        for status, number in process_statuses.items():
            statuses[status] = statuses.get(status, 0) + number
    ordered, ordered_lags = sorted(latencies), sorted(lags)
    offered = int(rate * seconds)
    lag_p99 = percentile(ordered_lags, 0.99) * 1000
    kept = sent >= KEPT * offered and failed == 0 and lag_p99 <= LAG_LIMIT_MS
    return {
        "offered_rate": rate,
        "achieved_rate": sent / seconds,
        "answered": len(latencies),
        "failed": failed,
        "statuses": statuses,
        "p50": percentile(ordered, 0.50) * 1000,
        "p99": percentile(ordered, 0.99) * 1000,
        "p999": percentile(ordered, 0.999) * 1000,
        "max": (ordered[-1] * 1000) if ordered else float("nan"),
        "lag_p99": lag_p99,
        "kept": kept,
        "slowest": _slowest(latencies, times),
    }


def _slowest(latencies: array, times: array, spans: int = 5) -> list[tuple[float, float]]:
    """Where the run was slowest: up to `spans` (second of the run a request was due, its latency in ms),
    the slowest requests at least 100 ms apart, to tell one stall from a periodic one."""
    found: list[tuple[float, float]] = []
    for index in sorted(range(len(latencies)), key=latencies.__getitem__, reverse=True):
        if all(abs(times[index] - at) >= 0.1 for at, _ in found):
            found.append((times[index], latencies[index] * 1000))
            if len(found) == spans:
                break
    return sorted(found)


def describe(result: dict) -> str:
    verdict = (
        "rate kept"
        if result["kept"]
        else "RATE NOT KEPT: invalid run (too few requests sent in time, failures, or the generator lagging)"
    )
    return (
        f"offered {result['offered_rate']:.0f}/s, sent {result['achieved_rate']:.0f}/s, "
        f"answered {result['answered']} (statuses {result['statuses']}), failed {result['failed']}; "
        f"latency from schedule p50 {result['p50']:.2f} ms, p99 {result['p99']:.2f} ms, "
        f"p99.9 {result['p999']:.2f} ms, max {result['max']:.2f} ms; generator lag p99 {result['lag_p99']:.2f} ms; "
        f"{verdict}; slowest at (s, ms): " + ", ".join(f"{at:.1f} s {ms:.0f}" for at, ms in result["slowest"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second, all processes together")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=50, help="kept-alive connections, all processes together")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-size", type=int, default=0, help="a body of this many bytes ('x')")
    parser.add_argument("--header", action="append", default=[], help='"Name: value", repeatable')
    args = parser.parse_args()
    headers = dict(header.split(": ", 1) for header in args.header)
    result = run(
        args.url,
        rate=args.rate,
        seconds=args.seconds,
        connections=args.connections,
        processes=args.processes,
        method=args.method,
        body=b"x" * args.body_size,
        headers=headers,
    )
    print(describe(result))
    raise SystemExit(0 if result["kept"] else 1)


if __name__ == "__main__":
    main()
