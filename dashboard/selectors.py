"""The dashboard's figures, each read with one or two aggregate queries (nothing row by row), as charts.

Messaging and jobs are read from the database; the cache and topics faces from the
figures every process records (core/metrics.py): the counters kept per minute, and the
subscribers connected now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Case, CharField, Count, Q, Sum, Value, When
from django.db.models.functions import TruncDate, TruncHour

from contentstore.models import MessageSet, Schedule
from core import metrics
from jobs.models import ACTIVE_STATES, AttemptOutcome, Job, JobKind, JobState
from subscriptions.models import BehindSubscription, SendBatch, SubscriptionSendFailure
from subscriptions.services import estimated_sends_forecast

from .charts import Chart, Series

SEND_OUTCOMES = ("sent", "failed", "skipped")
FORECAST_DAYS = 7
HISTORY_DAYS = 30
RECENT_MINUTES = 60

# A recorded send failure's kind, read from its reason as the send pipeline words it (the kinds
# of the sbm_send_failures metric): the first that matches. Plain LIKEs: far cheaper than
# regular expressions on every failure.
FAILURE_KINDS = (
    ("missing_message", Q(reason__startswith="Missing message:")),
    ("out_of_time", Q(reason__startswith="Not sent: the send task's time")),
    ("not_configured", Q(reason__contains=" is not set: there is no ")),
    ("bad_response", Q(reason__contains="answer is not the expected JSON")),
    ("http_429", Q(reason__contains="answered HTTP 429")),
    ("http_4xx", Q(reason__contains="answered HTTP 4")),
    ("http_5xx", Q(reason__contains="answered HTTP 5")),
    ("timeout", Q(reason__contains=": OutboundTimeout:")),
    ("connection", Q(reason__contains=": Outbound") & Q(reason__contains="Error:")),
)


def _series(rows: dict[str, dict], labels: list[str], names) -> tuple[Series, ...]:
    return tuple(Series(name, tuple(rows.get(label, {}).get(name, 0) for label in labels)) for name in names)


def _send_totals(queryset, bucket) -> dict:
    return {
        row["bucket"]: row
        for row in queryset.annotate(bucket=bucket)
        .values("bucket")
        .annotate(sent=Sum("sent"), failed=Sum("failed"), skipped=Sum("skipped"))
        .order_by()
    }


def sends_per_day(*, now: datetime) -> Chart:
    """What schedule sends did on each of the last 30 days (their batches, by the day each was done)."""
    zone = Schedule.time_zone()
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=back) for back in range(HISTORY_DAYS - 1, -1, -1)]
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=zone)
    totals = _send_totals(SendBatch.objects.filter(done_at__gte=start), TruncDate("done_at", tzinfo=zone))
    labels = [day.isoformat() for day in days]
    rows = {day.isoformat(): row for day, row in totals.items()}
    return Chart(
        slug="sends-per-day",
        title="Sends per day, last 30 days",
        description="Subscriptions the schedule sends handled each day, by outcome.",
        x_label="Day",
        y_label="Subscriptions",
        labels=tuple(labels),
        series=_series(rows, labels, SEND_OUTCOMES),
    )


def sends_per_hour_today(*, now: datetime) -> Chart:
    zone = Schedule.time_zone()
    local = now.astimezone(zone)
    start = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
    totals = _send_totals(
        SendBatch.objects.filter(done_at__gte=start, done_at__lt=start + timedelta(days=1)),
        TruncHour("done_at", tzinfo=zone),
    )
    labels = [f"{hour:02d}:00" for hour in range(24)]
    rows = {f"{moment.astimezone(zone).hour:02d}:00": row for moment, row in totals.items()}
    return Chart(
        slug="sends-per-hour",
        title=f"Sends per hour today ({local.date().isoformat()}, {zone.key})",
        description="Subscriptions the schedule sends handled in each hour of today, by outcome.",
        x_label="Hour",
        y_label="Subscriptions",
        labels=tuple(labels),
        series=_series(rows, labels, SEND_OUTCOMES),
    )


def send_failures_by_kind() -> Chart:
    """The sends recorded as failed and not yet sent since (each subscription's latest), by kind."""
    kind = Case(
        *(When(condition, then=Value(name)) for name, condition in FAILURE_KINDS),
        default=Value("other"),
        output_field=CharField(),
    )
    counts = dict(
        SubscriptionSendFailure.objects.annotate(kind=kind)
        .values("kind")
        .annotate(n=Count("id"))
        .values_list("kind", "n")
        .order_by()
    )
    labels = [name for name, _ in FAILURE_KINDS] + ["other"]
    return Chart(
        slug="send-failures",
        title="Send failures by kind",
        description="Sends recorded as failed and not sent since, by why they failed.",
        x_label="Kind",
        y_label="Failures",
        labels=tuple(labels),
        series=(Series("failures", tuple(counts.get(label, 0) for label in labels)),),
    )


def behind_subscriptions() -> Chart:
    """Subscriptions the behind check found behind, by the message set they are on."""
    rows = list(
        BehindSubscription.objects.values("current_messageset__short_name")
        .annotate(subscriptions=Count("subscription", distinct=True), messages=Sum("messages_behind"))
        .order_by("current_messageset__short_name")
    )
    return Chart(
        slug="subscriptions-behind",
        title="Subscriptions behind",
        description="Subscriptions found behind where their schedule says they should be, by message set.",
        x_label="Message set",
        y_label="Subscriptions",
        labels=tuple(row["current_messageset__short_name"] for row in rows),
        series=(Series("subscriptions", tuple(row["subscriptions"] for row in rows)),),
    )


def estimated_sends(*, now: datetime) -> Chart:
    """The sends expected on each of the next 7 days (today first), per message set."""
    today = now.astimezone(Schedule.time_zone()).date()
    days = [today + timedelta(days=ahead) for ahead in range(FORECAST_DAYS)]
    forecast = estimated_sends_forecast(days=days)
    set_ids = sorted({set_id for per_set in forecast.values() for set_id in per_set})
    names = dict(MessageSet.objects.filter(pk__in=set_ids).values_list("pk", "short_name"))
    return Chart(
        slug="estimated-sends",
        title="Estimated sends, next 7 days",
        description="Messages expected to be sent each day, per message set, from the ready subscriptions.",
        x_label="Day",
        y_label="Sends",
        labels=tuple(day.isoformat() for day in days),
        series=tuple(
            Series(names[set_id], tuple(forecast[day].get(set_id, 0) for day in days))
            for set_id in sorted(set_ids, key=lambda set_id: names[set_id])
        ),
    )


def job_states() -> Chart:
    """Jobs waiting and in flight (from the index the dispatcher claims by), and the dead-letter list.
    A recurring job is a schedule that makes jobs, never sent itself: its firings are counted, not it."""
    active = (
        Job.objects.filter(state__in=ACTIVE_STATES)
        .exclude(kind=JobKind.RECURRING)
        .aggregate(
            scheduled=Count("pk", filter=Q(state=JobState.SCHEDULED, attempt_count=0)),
            retrying=Count("pk", filter=Q(state=JobState.SCHEDULED, attempt_count__gt=0)),
            running=Count("pk", filter=Q(state=JobState.RUNNING)),
        )
    )
    dead = Job.objects.filter(state=JobState.FAILED).count()
    labels = ("scheduled", "failed, retry scheduled", "running", "dead (failed)")
    return Chart(
        slug="job-states",
        title="Jobs by state",
        description=(
            "Jobs scheduled for their first attempt, scheduled again after a failed attempt, "
            "being sent, and dead (every retry failed: the dead-letter list)."
        ),
        x_label="State",
        y_label="Jobs",
        labels=labels,
        series=(Series("jobs", (active["scheduled"], active["retrying"], active["running"], dead)),),
    )


# The last hour's attempts, read once (jobs_attempt has no index by time: one scan of it) for both
# charts: attempts per minute and outcome, and the lateness of the first attempts among them.
RECENT_ATTEMPTS_SQL = """
WITH recent AS MATERIALIZED (
    SELECT job_id, number, outcome, started_at FROM jobs_attempt
    WHERE started_at >= %(start)s AND started_at < %(end)s
)
SELECT date_trunc('minute', started_at), outcome, count(*), NULL::float, NULL::float
FROM recent GROUP BY 1, 2
UNION ALL
SELECT NULL, NULL, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lateness),
    percentile_cont(0.99) WITHIN GROUP (ORDER BY lateness)
FROM (
    SELECT GREATEST(EXTRACT(EPOCH FROM recent.started_at - job.at), 0) * 1000 AS lateness
    FROM recent JOIN jobs_job job ON job.id = recent.job_id
    WHERE recent.number = 1
) AS first_attempts
"""


def job_attempts(*, now: datetime) -> list[Chart]:
    """Attempts started in each of the last 60 minutes (this one included), by outcome; and how late the
    first attempts among them were: started_at - the job's `at`, p50 and p99 (first attempts only: a
    retry's due time is not recorded, a Retry-After may move it)."""
    zone = Schedule.time_zone()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    minutes = [end - timedelta(minutes=back) for back in range(RECENT_MINUTES, 0, -1)]
    rows: dict[str, dict] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(RECENT_ATTEMPTS_SQL, {"start": minutes[0], "end": end})
        for minute, outcome, count, p50, p99 in cursor.fetchall():
            if minute is None:
                first_attempts, lateness = count, (round(p50 or 0, 1), round(p99 or 0, 1))
            else:
                rows[f"{minute.astimezone(zone):%H:%M}"][outcome] = count
    labels = [f"{minute.astimezone(zone):%H:%M}" for minute in minutes]
    return [
        Chart(
            slug="job-lateness",
            title="Job lateness, last hour",
            description=f"How long after its due time each of the {first_attempts:,} first attempts "
            "of the last hour started.",
            x_label="Percentile",
            y_label="Milliseconds",
            labels=("p50", "p99"),
            series=(Series("lateness (ms)", lateness),),
            totals=False,
        ),
        Chart(
            slug="job-deliveries",
            title="Job deliveries per minute, last hour",
            description=f"Attempts to send jobs started each minute, by outcome ({zone.key}).",
            x_label="Minute",
            y_label="Attempts",
            labels=tuple(labels),
            series=_series(rows, labels, AttemptOutcome.values),
            kind="line",
        ),
    ]


def _status_class(status: str) -> str:
    return f"{status[:1]}xx" if status[:1].isdigit() else status


def cache_topics_charts(*, now: datetime) -> list[Chart]:
    """The cache and topics faces' charts over the last 60 minutes (this one included): requests per
    minute by operation and status class, the cache's hit ratio, topic publishes and deliveries; and the
    topic subscribers connected now. None when the faces recorded nothing in that hour."""
    zone = Schedule.time_zone()
    end = int(now.timestamp()) // 60 * 60
    starts = [end - 60 * back for back in range(RECENT_MINUTES - 1, -1, -1)]
    labels = [f"{datetime.fromtimestamp(start, zone):%H:%M}" for start in starts]
    requests: dict[str, dict[str, dict]] = {"cache": defaultdict(dict), "topics": defaultdict(dict)}
    counted: dict[str, dict] = defaultdict(dict)
    series_names: dict[str, dict[str, None]] = {"cache": {}, "topics": {}}
    for label, minute in zip(labels, metrics.per_minute(starts), strict=True):
        for (name, *values), value in minute.items():
            if name == "http_requests" and values[0] in requests:
                face, operation, _, status = values
                series = f"{operation} {_status_class(status)}"
                requests[face][label][series] = requests[face][label].get(series, 0) + value
                series_names[face][series] = None
            elif name != "http_requests":
                key = f"{name}:{values[0]}" if values else name
                counted[label][key] = counted[label].get(key, 0) + value
    if not any(series_names.values()) and not counted:
        return []
    hits = tuple(counted.get(label, {}).get("cache_hits", 0) for label in labels)
    misses = tuple(counted.get(label, {}).get("cache_misses", 0) for label in labels)
    ratio = tuple(
        round(100 * hit / (hit + miss), 1) if hit + miss else 0 for hit, miss in zip(hits, misses, strict=True)
    )
    subscribers = metrics.live_gauge("topics_subscribers")
    modes = ("long_poll", "stream")

    def per_minute(face: str) -> Chart:
        return Chart(
            slug=f"{face}-requests",
            title=f"{face.capitalize()} requests per minute, last hour",
            description=f"Requests the {face} face answered each minute, by operation and status class ({zone.key}).",
            x_label="Minute",
            y_label="Requests",
            labels=tuple(labels),
            series=_series(requests[face], labels, sorted(series_names[face])),
            kind="line",
        )

    return [
        per_minute("cache"),
        Chart(
            slug="cache-hit-ratio",
            title="Cache hit ratio per minute, last hour",
            description=f"Of the cache GETs each minute, the share that found their item ({int(sum(hits)):,} found, "
            f"{int(sum(misses)):,} not found in the hour; 0 in a minute without GETs).",
            x_label="Minute",
            y_label="Hits (%)",
            labels=tuple(labels),
            series=(Series("hit ratio (%)", ratio),),
            kind="line",
            totals=False,
        ),
        per_minute("topics"),
        Chart(
            slug="topic-messages",
            title="Topic publishes and deliveries per minute, last hour",
            description="Messages published to topics each minute, and handed to subscribers (long polls and streams).",
            x_label="Minute",
            y_label="Messages",
            labels=tuple(labels),
            series=(
                Series("published", tuple(counted.get(label, {}).get("topics_publishes", 0) for label in labels)),
                *(
                    Series(
                        f"delivered ({mode})",
                        tuple(counted.get(label, {}).get(f"topics_deliveries:{mode}", 0) for label in labels),
                    )
                    for mode in modes
                ),
            ),
            kind="line",
        ),
        Chart(
            slug="topic-subscribers",
            title="Topic subscribers connected now",
            description="Long polls and streams waiting for messages now, over every web process.",
            x_label="Mode",
            y_label="Subscribers",
            labels=modes,
            series=(Series("subscribers", tuple(subscribers.get((mode,), 0) for mode in modes)),),
        ),
    ]


@dataclass(frozen=True)
class Section:
    title: str
    charts: list[Chart]
    nothing_recorded: str = ""  # said instead of charts when the section has none


# Each chart's builder by its slug, in the order the dashboard shows them. A builder makes a list
# of charts: those that read the same rows are made together (and a builder is called once a page).
MESSAGING = {
    "sends-per-day": lambda now: [sends_per_day(now=now)],
    "sends-per-hour": lambda now: [sends_per_hour_today(now=now)],
    "send-failures": lambda now: [send_failures_by_kind()],
    "subscriptions-behind": lambda now: [behind_subscriptions()],
    "estimated-sends": lambda now: [estimated_sends(now=now)],
}
JOBS = {"job-states": lambda now: [job_states()], "job-lateness": job_attempts, "job-deliveries": job_attempts}
NO_CACHE_TOPICS_FIGURES = "No data recorded: no cache or topics request was answered in the last hour."


def _built(builders: dict, now: datetime) -> list[Chart]:
    return [chart for build in dict.fromkeys(builders.values()) for chart in build(now=now)]


def dashboard_sections(*, now: datetime) -> list[Section]:
    return [
        Section("Messaging", _built(MESSAGING, now)),
        Section("Jobs", _built(JOBS, now)),
        Section("Cache and topics", cache_topics_charts(now=now), nothing_recorded=NO_CACHE_TOPICS_FIGURES),
    ]


def dashboard_chart(*, slug: str, now: datetime) -> Chart | None:
    """The chart named `slug` (with those built with it), or None when there is none."""
    build = MESSAGING.get(slug) or JOBS.get(slug)
    built = build(now=now) if build is not None else cache_topics_charts(now=now)
    return next((chart for chart in built if chart.slug == slug), None)
