"""Operators' figures of every face (HTTP requests, cache, topics, jobs), in the Prometheus format.

A process counts in memory only: recording a figure is a dictionary update under a
lock, no I/O, so the cache and topics hot paths pay next to nothing for it. A
daemon thread of each process adds what it counted to one Redis hash (`METRICS_KEY`)
every METRICS_FLUSH_SECONDS, in one pipelined round trip, and at exit. One scrape
of any web process then sees the figures of every web, worker and scheduler
process on every machine, as the send pipeline's figures (subscriptions/metrics.py)
already are; docs/metrics.md says why this and not prometheus_client's
multi-process mode. A figure counted in the last interval before a process is
killed is lost; Redis flushed reads as a counter reset.

Gauges a process holds (the topic subscribers it serves) are written, whole, to a
second hash (`LIVE_KEY`), one field per process, at each flush; a scrape sums the
fields written recently and drops the others (their processes are gone).

Some counters (`PER_MINUTE`) are also added, at each flush, to a hash of the minute
(`MINUTE_KEY`), kept MINUTE_KEEP_SECONDS: the admin dashboard's per-minute charts read
them (`per_minute`), where Prometheus would compute rates from the totals.

Apps whose figures are read at scrape time (from the database, say) register a
collector in `registry` from their AppConfig.ready().
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import CollectorRegistry

from .redis import REDIS_ERRORS, get_redis

logger = logging.getLogger(__name__)

METRICS_KEY = "metrics:faces"
LIVE_KEY = "metrics:faces:live"
MINUTE_KEY = "metrics:faces:minute:{}"  # the minute's start, in seconds since the epoch
MINUTE_KEEP_SECONDS = 2 * 3600
# A process's gauges are counted while it wrote them within this many flush intervals.
LIVE_INTERVALS = 3

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class Metric:
    kind: str  # counter, histogram or gauge (a gauge held by each process, summed)
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


METRICS: dict[str, Metric] = {
    "http_requests": Metric(
        "counter",
        "HTTP requests answered, by face (cache, topics, jobs, messaging, tokens, other), operation, method and "
        "status.",
        ("face", "operation", "method", "status"),
    ),
    "http_request_duration_seconds": Metric(
        "histogram",
        "Seconds from a request's arrival to its answer (a topic subscription: to its end), by face and operation.",
        ("face", "operation"),
        DURATION_BUCKETS,
    ),
    "cache_hits": Metric("counter", "Cache GETs that found their item.", ()),
    "cache_misses": Metric("counter", "Cache GETs that did not find their item (Key Not Found).", ()),
    "cache_bytes": Metric("counter", "Bytes of item values read (get) or written (set) by the cache API.", ("op",)),
    "topics_publishes": Metric("counter", "Messages published to topics.", ()),
    "topics_deliveries": Metric(
        "counter", "Topic messages handed to subscribers, by mode (long_poll, stream).", ("mode",)
    ),
    "topics_subscribers": Metric(
        "gauge", "Topic subscribers waiting now (long polls and streams), by mode.", ("mode",)
    ),
    "jobs_claimed": Metric("counter", "Jobs a dispatcher claimed and queued for the workers.", ()),
    "jobs_delivered": Metric(
        "counter",
        "Job attempts recorded, by outcome (succeeded, failed, refused, lost) and kind (request, callback, "
        "failure_callback).",
        ("outcome", "kind"),
    ),
    "jobs_deferred": Metric(
        "counter", "Jobs given back unsent because their destination had too many requests in flight.", ()
    ),
    "jobs_lateness_seconds": Metric(
        "histogram",
        "Seconds from a job's `at` to the start of its first attempt.",
        (),
        LATENESS_BUCKETS,
    ),
    "jobs_dead_letters": Metric(
        "counter", "Jobs that failed for good (every retry failed, or refused): the dead-letter list.", ("kind",)
    ),
}


# Counters also kept per minute (at the minute they were flushed in, so up to a flush interval late).
PER_MINUTE = frozenset(("http_requests", "cache_hits", "cache_misses", "topics_publishes", "topics_deliveries"))


def _bounds(metric: Metric) -> tuple[str, ...]:
    return (*(repr(bound) for bound in metric.buckets), "+Inf")


class Buffer:
    """What this process counted since its last flush, and the gauges it holds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[tuple, float] = {}
        self.histograms: dict[tuple, list[float]] = {}  # per series: a count per bucket, then sum, then count
        self.live: dict[tuple, float] = {}
        self.live_written = False
        self.flusher: threading.Thread | None = None

    def start(self) -> None:
        """The flushing thread, once per process (and again in a forked child: `_after_fork`)."""
        with self.lock:
            if self.flusher is not None:
                return
            self.flusher = threading.Thread(target=self._flush_forever, name="metrics-flush", daemon=True)
        self.flusher.start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(settings.METRICS_FLUSH_SECONDS)
            self.flush()

    def take(self) -> tuple[dict, dict, dict | None]:
        with self.lock:
            counts, self.counts = self.counts, {}
            histograms, self.histograms = self.histograms, {}
            live = dict(self.live) if self.live or self.live_written else None
            self.live_written = bool(self.live)
        return counts, histograms, live

    def flush(self) -> None:
        """Add what was counted to Redis; when Redis is down the counts are lost (logged), nothing else."""
        counts, histograms, live = self.take()
        if not counts and not histograms and live is None:
            return
        fields: dict[str, float] = {}
        this_minute: dict[str, float] = {}
        for (name, labels), value in counts.items():
            fields[json.dumps([name, *labels])] = value
            if name in PER_MINUTE:
                this_minute[json.dumps([name, *labels])] = value
        for (name, labels), row in histograms.items():
            for bound, value in zip(_bounds(METRICS[name]), row, strict=False):
                if value:
                    fields[json.dumps([f"{name}_bucket", *labels, bound])] = value
            fields[json.dumps([f"{name}_sum", *labels])] = row[-2]
            fields[json.dumps([f"{name}_count", *labels])] = row[-1]
        try:
            pipe = get_redis().pipeline(transaction=False)
            for field, value in fields.items():
                pipe.hincrbyfloat(METRICS_KEY, field, value)
            if this_minute:
                minute_key = MINUTE_KEY.format(int(time.time()) // 60 * 60)
                for field, value in this_minute.items():
                    pipe.hincrbyfloat(minute_key, field, value)
                pipe.expire(minute_key, MINUTE_KEEP_SECONDS)
            if live is not None:
                values = [[name, list(labels), value] for (name, labels), value in live.items()]
                pipe.hset(LIVE_KEY, _process_id(), json.dumps({"at": time.time(), "values": values}))
            pipe.execute()
        except REDIS_ERRORS as error:
            logger.warning("Metrics not recorded (Redis unavailable): %s", error)

    def forget_process(self) -> None:
        """At exit: this process's gauges stop counting at once."""
        with contextlib.suppress(REDIS_ERRORS):
            get_redis().hdel(LIVE_KEY, _process_id())


def _process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


buffer = Buffer()


def _after_fork() -> None:
    """A forked child (a Celery prefork worker) starts counting from nothing, with a flusher of its own."""
    global buffer
    buffer = Buffer()


os.register_at_fork(after_in_child=_after_fork)


@atexit.register
def _at_exit() -> None:
    buffer.flush()
    if buffer.live_written:
        buffer.forget_process()


def _flushed_buffer() -> Buffer:
    """This process's buffer, its flushing thread started on first use."""
    state = buffer
    if state.flusher is None:
        state.start()
    return state


def count(name: str, amount: float = 1, *labels: str) -> None:
    """Add `amount` to the counter `name`, its label values in the order METRICS gives them."""
    if name not in METRICS:
        raise KeyError(f"Unknown metric {name}")
    state = _flushed_buffer()
    key = (name, labels)
    with state.lock:
        state.counts[key] = state.counts.get(key, 0) + amount


def observe(name: str, value: float, *labels: str) -> None:
    """Count `value` in the histogram `name`."""
    metric = METRICS[name]
    state = _flushed_buffer()
    key = (name, labels)
    index = bisect.bisect_left(metric.buckets, value)
    with state.lock:
        row = state.histograms.get(key)
        if row is None:
            row = state.histograms[key] = [0.0] * (len(metric.buckets) + 3)
        row[index] += 1
        row[-2] += value
        row[-1] += 1


def gauge_add(name: str, amount: float, *labels: str) -> None:
    """Move this process's gauge `name` by `amount` (+1 when a subscriber arrives, -1 when it leaves)."""
    if METRICS[name].kind != "gauge":
        raise KeyError(f"{name} is not a gauge")
    state = _flushed_buffer()
    key = (name, labels)
    with state.lock:
        state.live[key] = state.live.get(key, 0) + amount


# Methods counted by name; any other is `other`, so a client cannot make up label values.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def request_observed(face: str, operation: str, method: str, status: int, seconds: float) -> None:
    """One HTTP request answered: counted by status, its duration in the histogram."""
    count("http_requests", 1, face, operation, method if method in METHODS else "other", str(status))
    observe("http_request_duration_seconds", seconds, face, operation)


# --- Reading ---------------------------------------------------------------------


def _stored() -> tuple[dict[str, dict[tuple, float]], dict[str, dict[tuple, float]]]:
    """(counters and histogram parts, live gauges) as Redis holds them: {name: {labels: value}}."""
    client = get_redis()
    stored: dict[str, dict[tuple, float]] = {}
    for field, value in client.hgetall(METRICS_KEY).items():
        name, *labels = json.loads(field)
        stored.setdefault(name, {})[tuple(labels)] = float(value)
    live: dict[str, dict[tuple, float]] = {}
    oldest = time.time() - LIVE_INTERVALS * settings.METRICS_FLUSH_SECONDS
    gone = []
    for process, raw in client.hgetall(LIVE_KEY).items():
        entry = json.loads(raw)
        if entry["at"] < oldest:
            gone.append(process)
            continue
        for name, labels, value in entry["values"]:
            series = live.setdefault(name, {})
            series[tuple(labels)] = series.get(tuple(labels), 0.0) + value
    if gone:
        client.hdel(LIVE_KEY, *gone)
    return stored, live


def per_minute(minutes: list[int]) -> list[dict[tuple, float]]:
    """The PER_MINUTE counters of each of `minutes` (each minute's start, seconds since the epoch),
    as {(name, *labels): value}; one round trip."""
    pipe = get_redis().pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(MINUTE_KEY.format(minute))
    return [{tuple(json.loads(field)): float(value) for field, value in row.items()} for row in pipe.execute()]


def live_gauge(name: str) -> dict[tuple, float]:
    """A gauge's value now, summed over the processes that hold it: {labels: value}."""
    return _stored()[1].get(name, {})


def _family(name: str, metric: Metric, stored: dict, live: dict):
    labels = list(metric.labels)
    if metric.kind == "counter":
        family = CounterMetricFamily(name, metric.documentation, labels=labels)
        series = stored.get(name, {})
        if not labels:  # shown from the start, so that a rate() has a first point
            series = {(): series.get((), 0.0)}
        for key, value in sorted(series.items()):
            family.add_metric(list(key), value)
        return family
    if metric.kind == "gauge":
        family = GaugeMetricFamily(name, metric.documentation, labels=labels)
        for key, value in sorted(live.get(name, {}).items()):
            family.add_metric(list(key), value)
        return family
    family = HistogramMetricFamily(name, metric.documentation, labels=labels)
    per_bucket = stored.get(f"{name}_bucket", {})
    for key, total in sorted(stored.get(f"{name}_count", {}).items()):
        cumulative, buckets = 0.0, []
        for bound in _bounds(metric):
            cumulative += per_bucket.get((*key, bound), 0.0)
            buckets.append((bound, cumulative))
        buckets[-1] = ("+Inf", total)
        family.add_metric(list(key), buckets, stored.get(f"{name}_sum", {}).get(key, 0.0))
    return family


class FacesCollector:
    """Every figure of METRICS, as all processes added them to Redis."""

    def collect(self) -> Iterator:
        buffer.flush()  # this process's latest counts too
        try:
            stored, live = _stored()
        except REDIS_ERRORS as error:
            logger.warning("Metrics unavailable (Redis): %s", error)
            stored, live = {}, {}
        for name, metric in METRICS.items():
            yield _family(name, metric, stored, live)


# Every collector /metrics reads: this module's, and those the apps register in their ready().
registry = CollectorRegistry(auto_describe=False)
registry.register(FacesCollector())
