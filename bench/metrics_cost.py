"""CPU a request of the cache hot path spends on its metrics (core/metrics.py), in one process.

A cache GET that hits records what `lean_app` and the cache app record: the request
counted by status with its duration, the hit and its bytes. This measures that
recording alone, and one flush of a second's worth of distinct series to Redis (done
by the flushing thread, off the request's path). The whole-service figure is
bench/cache_http.py run before and after; on a shared machine its noise is larger
than this cost, which is why it is measured here on its own.

    .venv/bin/python bench/metrics_cost.py [--calls 200000]

Needs Redis on 127.0.0.1 (database 11, as bench/cache_http.py).
"""

import argparse
import os
import time

from common import heading, service_environment, write_results

# A production-like process's settings (bench/common.py); only Redis is used.
os.environ.update(service_environment(database="bench_cache", redis_url="redis://127.0.0.1:6379/11"))

import django

django.setup()

from core import metrics  # noqa: E402


def record_cache_hit() -> None:
    metrics.request_observed("cache", "get", "GET", 200, 0.0021)
    metrics.count("cache_hits")
    metrics.count("cache_bytes", 100, "get")


def per_call_microseconds(calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        record_cache_hit()
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    metrics.buffer.start = lambda: None  # no flushing thread: the recording is measured alone
    per_call_microseconds(10_000)  # warm up
    recording = min(per_call_microseconds(args.calls) for _ in range(3))
    started = time.perf_counter()
    metrics.buffer.flush()
    flush_ms = (time.perf_counter() - started) * 1000
    lines = [
        *heading("Metrics recording on the cache hot path", f", one process, {args.calls} calls, best of 3."),
        "",
        "| what | cost |",
        "|---|---|",
        f"| recording one cache GET hit (request + duration + hit + bytes) | {recording:.2f} µs CPU |",
        f"| one flush to Redis (series of the run, one pipelined round trip, flushing thread) | {flush_ms:.2f} ms |",
    ]
    write_results("metrics-cost", "\n".join(lines))


if __name__ == "__main__":
    main()
