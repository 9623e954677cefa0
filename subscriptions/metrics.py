"""Operators' figures of the send pipeline, in the Prometheus exposition format.

Counters and histograms are kept in Redis (one hash, `METRICS_KEY`): every worker
and web process, on every machine, adds to the same figures, so one scrape of any
web process sees them all, whatever the process model (prefork, threads, several
machines). A send task counts in memory and adds its counts with one pipelined
round trip when it ends. The figures restart from zero when Redis is flushed,
which Prometheus reads as a counter reset. Gauges (queue depth, ready
subscriptions, today's send estimates) are read from the database and the broker
at scrape time.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache

from celery import current_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from core import metrics as core_metrics
from core.redis import REDIS_ERRORS, get_redis

logger = logging.getLogger(__name__)

METRICS_KEY = "sbm:metrics"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BOUNDS = tuple(repr(bound) for bound in BUCKETS)

COUNTERS = {
    "sbm_subscription_sends": (
        "Subscriptions a send handled, by outcome (sent, dry_run, failed, skipped, no_address).",
        ["outcome"],
    ),
    "sbm_send_failures": (
        "Sends recorded as failed, by kind (http_4xx, http_5xx, timeout, connection, not_configured, "
        "out_of_time, missing_message, other).",
        ["kind"],
    ),
    "sbm_send_retries": ("Requests to the message sender or identity store made again after a failure.", []),
    "sbm_schedule_sends_started": ("Schedule sends (one per schedule and cron period) started.", []),
    "sbm_events_published": ("Messaging events published to MESSAGING_EVENTS_TOPIC.", []),
    "sbm_jobs_pruned": (
        "Finished work deleted by retention, by what (jobs, dead, attempts, webhook_deliveries, send_runs, "
        "send_batches).",
        ["what"],
    ),
    "sbm_events_lost": (
        "Messaging events not published, by reason (no_cache: the topic's cache does not exist; publish_failed).",
        ["reason"],
    ),
}
HISTOGRAMS = {
    "sbm_peer_request_duration_seconds": ("Seconds of each request to the message sender or identity store.", []),
    "sbm_send_batch_duration_seconds": ("Seconds a send task took, from start to commit.", []),
    "sbm_schedule_send_duration_seconds": ("Seconds from a schedule send's start to its last batch's end.", []),
}
GAUGES = {
    "sbm_send_batches_pending": "Batches of unfinished schedule sends not yet done (queued or running).",
    "sbm_send_queue_length": "Tasks waiting in the Celery broker's default queue.",
    "sbm_subscriptions_ready": "Subscriptions that sends go to (active, not completed, process_status 0).",
    "sbm_send_estimate_subscriptions": "Today's estimated sends per message set (EstimatedSend).",
}


@lru_cache(maxsize=1024)
def _field_of(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    return name + json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def _field(name: str, labels: dict[str, str]) -> str:
    return _field_of(name, tuple(sorted(labels.items())))


class Recorder:
    """Counts kept in memory until `flush` adds them to Redis."""

    def __init__(self) -> None:
        self.values: Counter[str] = Counter()

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        if name not in COUNTERS:
            raise KeyError(f"Unknown counter {name}")
        if amount:
            self.values[_field(name, labels)] += amount

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        if name not in HISTOGRAMS:
            raise KeyError(f"Unknown histogram {name}")
        index = bisect.bisect_left(BUCKETS, seconds)
        bound = "+Inf" if index == len(BUCKETS) else BOUNDS[index]
        self.values[_field(f"{name}_bucket", {**labels, "le": bound})] += 1
        self.values[_field(f"{name}_sum", labels)] += seconds
        self.values[_field(f"{name}_count", labels)] += 1

    def flush(self) -> None:
        """Add the counts to Redis; a Redis that is down loses them (logged), never the send."""
        if not self.values:
            return
        try:
            pipe = get_redis().pipeline(transaction=False)
            for name, value in self.values.items():
                pipe.hincrbyfloat(METRICS_KEY, name, value)
            pipe.execute()
        except REDIS_ERRORS as error:
            logger.warning("Send metrics not recorded (Redis unavailable): %s", error)
        self.values.clear()


def record(name: str, amount: float = 1, **labels: str) -> None:
    """Add to one counter at once (for rare events)."""
    recorder = Recorder()
    recorder.inc(name, amount, **labels)
    recorder.flush()


def observe(name: str, seconds: float, **labels: str) -> None:
    recorder = Recorder()
    recorder.observe(name, seconds, **labels)
    recorder.flush()


def _stored() -> dict[str, dict[str, float]]:
    """What Redis holds: {field name: {labels json: value}}."""
    stored: dict[str, dict[str, float]] = {}
    for raw_field, raw_value in get_redis().hgetall(METRICS_KEY).items():
        text = raw_field.decode()
        brace = text.index("{")
        stored.setdefault(text[:brace], {})[text[brace:]] = float(raw_value)
    return stored


def _counters(stored: dict) -> Iterator:
    for name, (documentation, label_names) in COUNTERS.items():
        family = CounterMetricFamily(name, documentation, labels=label_names)
        for labels_json, value in sorted(stored.get(name, {}).items()):
            labels = json.loads(labels_json)
            family.add_metric([labels.get(label, "") for label in label_names], value)
        yield family


def _histograms(stored: dict) -> Iterator:
    for name, (documentation, label_names) in HISTOGRAMS.items():
        family = HistogramMetricFamily(name, documentation, labels=label_names)
        series: dict[tuple, dict] = {}
        for labels_json, value in stored.get(f"{name}_bucket", {}).items():
            labels = json.loads(labels_json)
            bound = labels.pop("le")
            key = tuple(labels.get(label, "") for label in label_names)
            series.setdefault(key, {})[bound] = value
        for key, per_bucket in sorted(series.items()):
            labels_json = json.dumps(dict(zip(label_names, key, strict=True)), sort_keys=True, separators=(",", ":"))
            cumulative, buckets = 0.0, []
            for bound in [*BOUNDS, "+Inf"]:
                cumulative += per_bucket.get(bound, 0.0)
                buckets.append((bound, cumulative))
            family.add_metric(list(key), buckets, stored.get(f"{name}_sum", {}).get(labels_json, 0.0))
        yield family


def _broker_queue_length() -> float | None:
    """Tasks ready in the default queue, as the broker counts them, Redis or RabbitMQ: the queue is
    declared as the workers declare it (which changes nothing when it exists), and both answer that
    with its length."""
    app = current_app
    try:
        with app.connection_for_read() as connection:
            queue = app.amqp.queues[app.conf.task_default_queue].bind(connection.default_channel)
            return float(queue.queue_declare().message_count)
    except Exception as error:  # the figure is optional: the broker is down
        logger.warning("Broker queue length unavailable: %s", error)
        return None


def _gauges() -> Iterator:
    from .selectors import pipeline_figures

    figures = pipeline_figures()
    yield GaugeMetricFamily(
        "sbm_send_batches_pending", GAUGES["sbm_send_batches_pending"], value=figures.batches_pending
    )
    queue_length = _broker_queue_length()
    if queue_length is not None:
        yield GaugeMetricFamily("sbm_send_queue_length", GAUGES["sbm_send_queue_length"], value=queue_length)
    yield GaugeMetricFamily(
        "sbm_subscriptions_ready", GAUGES["sbm_subscriptions_ready"], value=figures.subscriptions_ready
    )
    estimates = GaugeMetricFamily(
        "sbm_send_estimate_subscriptions", GAUGES["sbm_send_estimate_subscriptions"], labels=["messageset"]
    )
    for short_name, subscriptions in figures.estimates_today.items():
        estimates.add_metric([short_name], subscriptions)
    yield estimates


class PipelineCollector:
    def collect(self) -> Iterator:
        try:
            stored = _stored()
        except REDIS_ERRORS as error:
            logger.warning("Send metrics unavailable (Redis): %s", error)
            stored = {}
        yield from _counters(stored)
        yield from _histograms(stored)
        yield from _gauges()


def metric_names() -> list[str]:
    """Every metric name /metrics shows (counters with their `_total` suffix)."""
    return sorted([f"{name}_total" for name in COUNTERS] + list(HISTOGRAMS) + list(GAUGES))


# /metrics reads every face's figures: the send pipeline's join core.metrics' registry.
registry = core_metrics.registry
registry.register(PipelineCollector())
