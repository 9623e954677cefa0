"""Topics fan-out against plain Redis pub/sub, in one run.

(a) 100 SSE subscribers on one topic, publishers at rising rates: delivered
    messages/s and publish-to-receive latency (the payload carries its publish
    time), against the same fan-out done with Redis pub/sub directly.
(b) 10,000 idle subscribers (half long poll, half SSE) held by one web process:
    its memory per subscriber, and how long one publish takes to reach them all.

    .venv/bin/python bench/topics_fanout.py [--subscribers 100] [--idle 10000] [--rates 50,100,200,300,400] \
        [--seconds 5] [--http procfile|httptools|h11]

Needs PostgreSQL and Redis on 127.0.0.1. Uses the database `bench_topics` and
Redis database 10; all traffic stays on loopback and the run stops by itself.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import statistics
import time
from pathlib import Path

import hiredis
import redis.asyncio
from common import HTTP_PARSERS, heading, prepare_service, service_environment, start_uvicorn, write_results

DATABASE = "bench_topics"
REDIS_PORT, REDIS_DB = 6379, "10"
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}"
PORT = 18711
RATES = (50, 100, 200, 300, 400)
SECONDS_PER_RATE = 5
PUBLISHERS = 4  # kept-alive publisher connections, ours and the baseline's
SETTLE_SECONDS = 3


def environment() -> dict[str, str]:
    return service_environment(
        database=DATABASE, redis_url=REDIS_URL, TOPICS_LONG_POLL_SECONDS="300", TOPICS_SSE_HEARTBEAT_SECONDS="60"
    )


def raise_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def prepare() -> str:
    return prepare_service(environment(), cache="bench", scope="topics:publishsubscribe:bench")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def open_subscriber(
    token: str, *, sse: bool, topic: str, sequence_number: int = 0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    accept = "text/event-stream" if sse else "application/json"
    writer.write(
        f"GET /topics/bench/{topic}?token={token}&sequence_number={sequence_number} HTTP/1.1\r\nHost: bench\r\n"
        f"Accept: {accept}\r\n\r\n".encode()
    )
    await writer.drain()
    return reader, writer


# An SSE event's data ends with the message's value: ... "value": {"text": "<publish time in ms>"}}
SENT = re.compile(rb'"text": "([0-9.]+)"')
DISCONTINUITY = re.compile(rb"event: discontinuity\ndata: ([^\n]*)\n")


class Tally:
    """What the subscribers of one round received: latencies, and the messages they were told they missed."""

    def __init__(self):
        self.latencies: list[float] = []
        self.discontinuities = 0
        self.skipped = 0

    @property
    def accounted(self) -> int:
        return len(self.latencies) + self.skipped


async def read_sse(reader: asyncio.StreamReader, tally: Tally) -> None:
    """Whole events from the stream, as they come: a chunk at a time, parsed without a per-line loop."""
    pending = b""
    while chunk := await reader.read(262144):
        now = time.time() * 1000
        pending += chunk
        end = pending.rfind(b"\n\n") + 2
        if end < 2:
            continue
        events, pending = pending[:end], pending[end:]
        tally.latencies.extend(now - float(sent) for sent in SENT.findall(events))
        for data in DISCONTINUITY.findall(events):
            gap = json.loads(data)
            tally.discontinuities += 1
            tally.skipped += max(gap["new_topic_sequence"] - gap["last_topic_sequence"] - 1, 0)


class Publisher:
    def __init__(self, token: str, topic: str):
        self.token, self.topic = token, topic

    async def __aenter__(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", PORT)
        return self

    async def __aexit__(self, *exc):
        self.writer.close()

    async def publish(self, text: str) -> None:
        body = text.encode()
        self.writer.write(
            f"POST /topics/bench/{self.topic} HTTP/1.1\r\nHost: bench\r\nAuthorization: {self.token}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await self.writer.drain()
        status = await self.reader.readline()
        while (await self.reader.readline()) not in (b"\r\n", b""):
            pass
        if b" 204 " not in status:
            raise RuntimeError(f"publish failed: {status!r}")


async def paced(rate: int, seconds: int, send) -> int:
    """Start `send` `rate` times a second for `seconds`, each on time whether or not
    the previous one has finished; how many were sent."""
    count, start, pending = 0, time.perf_counter(), []
    total = rate * seconds
    while count < total:
        delay = start + count / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.ensure_future(send(f"{time.time() * 1000:.3f}")))
        count += 1
    await asyncio.gather(*pending)
    return count


class PublisherPool:
    """A few kept-alive publisher connections, each used by one publish at a time."""

    def __init__(self, token: str, topic: str, size: int = PUBLISHERS):
        self.publishers = [Publisher(token, topic) for _ in range(size)]
        self.free: asyncio.Queue = asyncio.Queue()

    async def __aenter__(self):
        for publisher in self.publishers:
            await publisher.__aenter__()
            self.free.put_nowait(publisher)
        return self

    async def __aexit__(self, *exc):
        for publisher in self.publishers:
            await publisher.__aexit__()

    async def publish(self, text: str) -> None:
        publisher = await self.free.get()
        try:
            await publisher.publish(text)
        finally:
            self.free.put_nowait(publisher)


async def until_accounted(tally: Tally, expected: int) -> None:
    """Until every message sent is received or announced missed, or 10 s pass."""
    deadline = time.perf_counter() + 10
    while tally.accounted < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


async def fanout_service(token: str, subscribers: int, rates: list[int], seconds: int) -> list[dict]:
    results = []
    for rate in rates:
        topic = f"fanout-{rate}"
        tally = Tally()
        connections = [await open_subscriber(token, sse=True, topic=topic) for _ in range(subscribers)]
        readers = [asyncio.ensure_future(read_sse(r, tally)) for r, _ in connections]
        await asyncio.sleep(1)
        async with PublisherPool(token, topic) as publisher:
            start = time.perf_counter()
            sent = await paced(rate, seconds, publisher.publish)
            await until_accounted(tally, sent * subscribers)
            elapsed = time.perf_counter() - start
        for task in readers:
            task.cancel()
        for _, writer in connections:
            writer.close()
        results.append(summary(rate, tally, sent * subscribers, elapsed))
    return results


class PubSubSubscriber:
    """One subscriber of a Redis channel on a connection of its own, its replies parsed by
    hiredis (as redis-py parses them) a chunk at a time."""

    def __init__(self, channel: str, tally: Tally):
        self.channel, self.tally = channel.encode(), tally

    async def start(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", REDIS_PORT)
        command = [b"SELECT", REDIS_DB.encode()], [b"SUBSCRIBE", self.channel]
        self.writer.write(b"".join(resp_command(*words) for words in command))
        self.parser = hiredis.Reader()
        while True:  # +OK, then the subscription's confirmation
            self.parser.feed(await self.reader.read(65536))
            while (reply := self.parser.gets()) is not False:
                if isinstance(reply, list) and reply[0] == b"subscribe":
                    return

    async def listen(self) -> None:
        latencies, parser = self.tally.latencies, self.parser
        while chunk := await self.reader.read(262144):
            now = time.time() * 1000
            parser.feed(chunk)
            while (reply := parser.gets()) is not False:
                latencies.append(now - float(reply[2]))

    def close(self) -> None:
        self.writer.close()


def resp_command(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in words)


async def pubsub_round(rate: int, subscribers: int, seconds: int) -> dict:
    channel = f"bench-fanout-{rate}"
    tally = Tally()
    clients = [PubSubSubscriber(channel, tally) for _ in range(subscribers)]
    for client in clients:
        await client.start()
    listeners = [asyncio.ensure_future(client.listen()) for client in clients]
    # Publishers shaped as ours: PUBLISHERS kept-alive connections, a publish waiting for a free one
    # (a pool that opened one per publish in flight would stop at redis-py's 100 connections, or grow without bound).
    pool = redis.asyncio.BlockingConnectionPool.from_url(REDIS_URL, max_connections=PUBLISHERS, timeout=None)
    publisher = redis.asyncio.Redis(connection_pool=pool)
    start = time.perf_counter()
    sent = await paced(rate, seconds, lambda text: publisher.publish(channel, text))
    await until_accounted(tally, sent * subscribers)
    elapsed = time.perf_counter() - start
    for task in listeners:
        task.cancel()
    for client in clients:
        client.close()
    await publisher.aclose()
    await pool.aclose()
    return summary(rate, tally, sent * subscribers, elapsed)


async def fanout_pubsub(subscribers: int, rates: list[int], seconds: int) -> list[dict]:
    """The baseline: the same fan-out with Redis pub/sub, one connection per subscriber."""
    return [await pubsub_round(rate, subscribers, seconds) for rate in rates]


def summary(rate: int, tally: Tally, expected: int, elapsed: float) -> dict:
    latencies = tally.latencies
    return {
        "rate": rate,
        "expected": expected,
        "delivered": len(latencies),
        "skipped": tally.skipped,
        "discontinuities": tally.discontinuities,
        "per_second": len(latencies) / elapsed,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99),
    }


async def idle_subscribers(token: str, count: int, server_pid: int) -> dict:
    before = rss_kib(server_pid)
    half = count // 2
    connections = []
    for batch_start in range(0, count, 500):
        batch = range(batch_start, min(batch_start + 500, count))
        connections += await asyncio.gather(
            # from sequence 1, so a subscriber the server takes in after the publish still gets it
            *(open_subscriber(token, sse=i >= half, topic="idle", sequence_number=1) for i in batch)
        )
    await asyncio.sleep(SETTLE_SECONDS)  # let the server take every request in
    held = rss_kib(server_pid)
    received = asyncio.Event()
    arrivals = 0

    async def first_message(reader) -> None:
        nonlocal arrivals
        seen = b""
        while b"topic_sequence_number" not in seen:
            chunk = await reader.read(65536)
            if not chunk:
                return
            seen = seen[-64:] + chunk
        arrivals += 1
        if arrivals == count:
            received.set()

    waiters = [asyncio.ensure_future(first_message(reader)) for reader, _ in connections]
    async with Publisher(token, "idle") as publisher:
        start = time.perf_counter()
        await publisher.publish("to everyone")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(received.wait(), 60)
    reach = time.perf_counter() - start
    for task in waiters:
        task.cancel()
    for _, writer in connections:
        writer.close()
    return {
        "count": count,
        "reached": arrivals,
        "rss_before_mib": before / 1024,
        "rss_held_mib": held / 1024,
        "per_subscriber_kib": (held - before) / count,
        "reach_seconds": reach,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="publishes/s, one round each")
    parser.add_argument("--seconds", type=int, default=SECONDS_PER_RATE, help="of publishing, per round")
    parser.add_argument("--http", choices=list(HTTP_PARSERS), default="procfile", help="uvicorn's protocol")
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    raise_file_limit()
    token = prepare()
    asyncio.run(redis.asyncio.Redis.from_url(REDIS_URL).flushdb())
    server = start_uvicorn(
        "config.asgi:application", PORT, env=environment(), http=args.http, preexec_fn=raise_file_limit
    )
    try:
        ours = asyncio.run(fanout_service(token, args.subscribers, rates, args.seconds))
        baseline = asyncio.run(fanout_pubsub(args.subscribers, rates, args.seconds))
        idle = asyncio.run(idle_subscribers(token, args.idle, server.pid))
    finally:
        server.stop(grace=30)

    lines = [
        *heading(
            "Topics fan-out vs Redis pub/sub",
            f"; one uvicorn worker ({args.http}); the client on the same cores; {args.seconds} s per rate; "
            f"{PUBLISHERS} publisher connections each; loopback; load average {os.getloadavg()[0]:.2f} at the end.",
        ),
        "",
        f"(a) {args.subscribers} SSE subscribers on one topic. Delivered: received / sent to all; "
        "announced: skipped past with a discontinuity.",
        "",
        "| publishes/s | ours delivered/s | ours p50 ms | ours p99 ms | ours delivered | ours announced "
        "| pub/sub delivered/s | pub/sub p50 ms | pub/sub p99 ms | pub/sub delivered | ours / pub/sub |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mine, base in zip(ours, baseline, strict=True):
        lines.append(
            f"| {mine['rate']} | {mine['per_second']:.0f} | {mine['p50']:.1f} | {mine['p99']:.1f} "
            f"| {mine['delivered']}/{mine['expected']} | {mine['skipped']} in {mine['discontinuities']} "
            f"| {base['per_second']:.0f} | {base['p50']:.1f} | {base['p99']:.1f} "
            f"| {base['delivered']}/{base['expected']} "
            f"| {mine['per_second'] / base['per_second']:.2f} |"
        )
    lines += [
        "",
        f"(b) {idle['count']} idle subscribers (half long poll, half SSE) in one web process: "
        f"{idle['reached']} reached by one publish in {idle['reach_seconds']:.2f} s; "
        f"process memory {idle['rss_before_mib']:.0f} MiB before, {idle['rss_held_mib']:.0f} MiB holding them "
        f"({idle['per_subscriber_kib']:.1f} KiB per subscriber).",
    ]
    name = "topics-fanout" if args.http == "procfile" else f"topics-fanout-{args.http}"
    write_results(name, "\n".join(lines) + "\n", stamp="%Y-%m-%d-%H%M")


if __name__ == "__main__":
    main()
