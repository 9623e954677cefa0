"""Benchmark of creating jobs: one batch of N against N single creates, in the same run.

    .venv/bin/python bench/jobs_batch.py [--jobs 1000] [--rounds 3]

Starts the service (config.asgi under uvicorn, one worker) against a database
(`jobs_batch_bench`, made afresh) and a Redis database (12) of its own, and over one
kept-alive HTTP connection on 127.0.0.1 (TCP_NODELAY) measures, each --rounds times (the median is
shown):

- singles: N `POST /jobs.json`, one after the other (the baseline: what a client does
  without batches);
- batch: one `POST /jobs/batch.json` of the same N jobs;
- batch with ids: the same, each job with a new deduplication_id;
- batch replayed: that batch again, every job answered by its deduplication_id.

Jobs are due in 2100 and no dispatcher runs: only creating them is measured. The table
is printed and written to bench/results/jobs-batch-<date>.md.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
import uuid

import httpx
from common import heading, prepare_service, service_environment, start_uvicorn, write_results

from harness.waiting import free_port

DATABASE = "jobs_batch_bench"
REDIS_URL = "redis://127.0.0.1:6379/12"
AT = "2100-01-01T00:00:00Z"


def job(n: int, deduplication_id: str | None = None) -> dict:
    fields = {"uri": f"https://example.org/hook/{n}", "at": AT, "method": "POST", "body": f'{{"n": {n}}}'}
    if deduplication_id:
        fields["deduplication_id"] = deduplication_id
    return {"job": fields}


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    environment = service_environment(database=DATABASE, redis_url=REDIS_URL)
    key = prepare_service(environment, cache="bench", scope="jobs:readwrite")
    port = free_port()
    server = start_uvicorn("config.asgi:application", port, env=environment)
    headers = {"Authorization": f"Token {key}"}
    results: dict[str, list[float]] = {"singles": [], "batch": [], "batch with ids": [], "batch replayed": []}
    try:
        # TCP_NODELAY: without it each single create would wait out a delayed ACK (~40 ms) between its
        # headers and its body, and the baseline would measure the kernel instead of the service.
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=300, transport=transport
        ) as client:

            def singles() -> None:
                for n in range(args.jobs):
                    client.post("/jobs.json", json=job(n)).raise_for_status()

            def batch(jobs: list[dict]) -> None:
                answer = client.post("/jobs/batch.json", json={"jobs": jobs})
                answer.raise_for_status()
                assert len(answer.json()["success"]["jobs"]) == len(jobs)

            client.post("/jobs.json", json=job(0)).raise_for_status()  # warm up: connection, imports, token cache
            for _ in range(args.rounds):
                results["singles"].append(timed(singles))
                results["batch"].append(timed(lambda: batch([job(n) for n in range(args.jobs)])))
                run = uuid.uuid4().hex[:8]
                with_ids = [job(n, f"{run}-{n}") for n in range(args.jobs)]
                results["batch with ids"].append(timed(lambda jobs=with_ids: batch(jobs)))
                results["batch replayed"].append(timed(lambda jobs=with_ids: batch(jobs)))
    finally:
        server.stop()

    baseline = statistics.median(results["singles"])
    lines = heading(
        f"Creating {args.jobs} jobs: one batch against single creates",
        f"; one uvicorn worker, PostgreSQL and Redis on the same cores; median of {args.rounds} rounds",
    )
    lines += ["", "| how | seconds (median) | jobs/s | vs singles |", "|---|---|---|---|"]
    for name, times in results.items():
        seconds = statistics.median(times)
        lines.append(f"| {name} | {seconds:.3f} | {args.jobs / seconds:,.0f} | {baseline / seconds:.1f}x |")
    lines += [
        "",
        "Every round: " + "; ".join(f"{name} {', '.join(f'{t:.3f}' for t in ts)}" for name, ts in results.items()),
    ]
    write_results("jobs-batch", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
