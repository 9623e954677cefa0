"""Cache data API over HTTP against a framework-free ASGI baseline, in one run.

Starts both apps under uvicorn (same worker count) on loopback, loads them with
wrk at 50 and 200 connections (GET hit, GET miss, PUT 100 B, PUT 10 KB): saturation,
each connection sending its next request as soon as the last is answered. Then at a
constant rate (bench/loadgen.py: requests at fixed times, latency counted from each
one's time, so a pause is felt by every request it delays), 50% and 80% of the
baseline's measured capacity for that request, ours and the baseline at the same
offered rate. Measures Redis itself with redis-benchmark, prints the tables and
writes them to bench/results/.

    .venv/bin/python bench/cache_http.py [--seconds 8] [--workers 2] [--rate-seconds 10]

Needs PostgreSQL and Redis on 127.0.0.1 and wrk (apt-get install wrk). Uses the
database `bench_cache` and Redis database 11.
"""

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import httpx
import loadgen
from common import HTTP_PARSERS, heading, prepare_service, service_environment, start_uvicorn, write_results

from harness.processes import stop_all

DATABASE = "bench_cache"
REDIS_URL = "redis://127.0.0.1:6379/11"
OURS_PORT, BASELINE_PORT = 18701, 18702
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}
LOADS = (0.5, 0.8)  # constant rates, as shares of the baseline's capacity (its wrk rate at 50 connections)
RATE_CONNECTIONS = 50  # the constant-rate runs' kept-alive connections


def environment() -> dict[str, str]:
    return service_environment(database=DATABASE, redis_url=REDIS_URL, CACHE_RATE_LIMIT_BYTES="0")


def prepare() -> str:
    return prepare_service(environment(), cache="bench", scope="cache:readwrite:bench")


def wrk(url: str, connections: int, seconds: int, headers: dict[str, str], body_size: int = 0) -> dict:
    lines = [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    if body_size:
        lines += ['wrk.method = "PUT"', f'wrk.body = string.rep("x", {body_size})']
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "request.lua"
        script.write_text("\n".join(lines) + "\n")
        output = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    latency = {
        percent: float(value) * UNIT[unit]
        for percent, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)[ \t]*$", output, re.M)
    }
    if set(latency) != {"50", "99"}:
        raise RuntimeError(f"Unexpected wrk output for {url}:\n{output}")
    statuses = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": latency["50"],
        "p99": latency["99"],
        "non2xx": int(statuses.group(1)) if statuses else 0,
    }


def redis_benchmark() -> dict:
    done = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "-n", "200000", "-c", "50", "-t", "get", "--csv"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    row = done.stdout.strip().splitlines()[-1].replace('"', "").split(",")
    return {"rps": float(row[1]), "p50": float(row[4]), "p99": float(row[6])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate-seconds", type=float, default=None, help="each constant-rate run (default: --seconds)")
    parser.add_argument("--rate-processes", type=int, default=1, help="load generator processes")
    parser.add_argument(
        "--http",
        choices=list(HTTP_PARSERS),
        default="procfile",
        help="uvicorn's protocol for ours; the baseline's is httptools alone, or h11 when ours is",
    )
    args = parser.parse_args()

    token = prepare()
    auth = {"Authorization": token}
    ours = start_uvicorn("config.asgi:application", OURS_PORT, env=environment(), workers=args.workers, http=args.http)
    baseline_http = "h11" if args.http == "h11" else "httptools"
    baseline = start_uvicorn(
        "bench.baseline_asgi:app", BASELINE_PORT, env=environment(), workers=args.workers, http=baseline_http
    )
    try:
        httpx.put(
            f"http://127.0.0.1:{OURS_PORT}/cache/bench?key=hit&ttl_seconds=3600", content=b"v" * 100, headers=auth
        )
        httpx.put(f"http://127.0.0.1:{BASELINE_PORT}/?key=hit", content=b"v" * 100)
        scenarios = [
            ("GET hit", "key=hit", 0),
            ("GET miss", "key=miss", 0),
            ("PUT 100 B", "key=put100&ttl_seconds=300", 100),
            ("PUT 10 KB", "key=put10k&ttl_seconds=300", 10_240),
        ]
        rows = []
        for connections in (50, 200):
            for name, query, size in scenarios:
                wrk(f"http://127.0.0.1:{OURS_PORT}/cache/bench?{query}", connections, 2, auth, size)  # warm up
                mine = wrk(f"http://127.0.0.1:{OURS_PORT}/cache/bench?{query}", connections, args.seconds, auth, size)
                base = wrk(f"http://127.0.0.1:{BASELINE_PORT}/?{query}", connections, args.seconds, {}, size)
                rows.append((name, connections, mine, base))
        capacity = {name: base["rps"] for name, connections, _, base in rows if connections == 50}
        steady = []
        for name, query, size in scenarios:
            method = "PUT" if size else "GET"
            for load in LOADS:
                rate = load * capacity[name]
                options = {
                    "rate": rate,
                    "seconds": args.rate_seconds or args.seconds,
                    "connections": RATE_CONNECTIONS,
                    "processes": args.rate_processes,
                    "method": method,
                    "body": b"x" * size,
                }
                mine = loadgen.run(f"http://127.0.0.1:{OURS_PORT}/cache/bench?{query}", headers=auth, **options)
                base = loadgen.run(f"http://127.0.0.1:{BASELINE_PORT}/?{query}", **options)
                steady.append((name, load, rate, mine, base))
        redis_alone = redis_benchmark()
    finally:
        stop_all([ours, baseline], grace=30)

    lines = [
        *heading(
            "Cache data API vs framework-free ASGI baseline",
            f", uvicorn --workers {args.workers} (ours: {args.http}; baseline: {baseline_http}), "
            f"wrk -t2 on the same cores, {args.seconds} s per run, loopback.",
        ),
        "",
        "| request | conns | ours req/s | ours p50 ms | ours p99 ms | baseline req/s | baseline p50 ms "
        "| baseline p99 ms | throughput ratio | p99 ratio | non-2xx (ours/base) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, connections, mine, base in rows:
        lines.append(
            f"| {name} | {connections} | {mine['rps']:.0f} | {mine['p50']:.2f} | {mine['p99']:.2f} | {base['rps']:.0f} "
            f"| {base['p50']:.2f} | {base['p99']:.2f} | {mine['rps'] / base['rps']:.2f} | "
            f"{mine['p99'] / base['p99']:.2f} | {mine['non2xx']}/{base['non2xx']} |"
        )
    lines += [
        "",
        f"At a constant rate (bench/loadgen.py, {RATE_CONNECTIONS} kept-alive connections, "
        f"{args.rate_processes} generator process(es), {args.rate_seconds or args.seconds} s per run): latency from "
        "each request's scheduled time, ms; the rate is a share of the baseline's capacity above (50 connections).",
        "",
        "| request | load | offered req/s | ours sent req/s | ours p50 | ours p99 | ours p99.9 | baseline sent req/s "
        "| baseline p50 | baseline p99 | baseline p99.9 | p99 ratio | p99.9 ratio | rate kept (ours/base) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, load, rate, mine, base in steady:
        lines.append(
            f"| {name} | {load:.0%} | {rate:.0f} | {mine['achieved_rate']:.0f} | {mine['p50']:.2f} | {mine['p99']:.2f} "
            f"| {mine['p999']:.2f} | {base['achieved_rate']:.0f} | {base['p50']:.2f} | {base['p99']:.2f} "
            f"| {base['p999']:.2f} | {mine['p99'] / base['p99']:.2f} | {mine['p999'] / base['p999']:.2f} "
            f"| {'yes' if mine['kept'] else 'NO'}/{'yes' if base['kept'] else 'NO'} |"
        )
    lines += [
        "",
        "A run whose rate was not kept (too few requests sent in time, failures, or the generator itself lagging "
        f"past {loadgen.LAG_LIMIT_MS:g} ms at p99) is invalid: its latencies are not those of the offered rate.",
        "",
        f"Redis alone (redis-benchmark GET, 50 clients): {redis_alone['rps']:.0f} req/s, "
        f"p50 {redis_alone['p50']:.2f} ms, p99 {redis_alone['p99']:.2f} ms.",
        "GET miss answers 404 by design (counted as non-2xx).",
    ]
    write_results("cache-http" if args.http == "procfile" else f"cache-http-{args.http}", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
