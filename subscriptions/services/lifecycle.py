"""Where a subscription should be by now (behind subscriptions), and daily send estimates.

Expected messages sent = the schedule's run times after the subscription's
`created_at` up to now, plus `initial_sequence_number` - 1, capped at the set's
size (its number of messages in the subscription's language). When that reaches
the size the set is complete, and a follow-on set (`next_set`) is taken to start
one minute after the last run time of the previous one, on its default schedule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from contentstore.models import MessageSet, Schedule

from ..models import BehindSubscription, EstimatedSend, Subscription
from ..selectors import SetSizes

# Most follow-on sets one lifecycle is followed through (a chain of next_set that loops ends here).
MAX_FOLLOW_ON_SETS = 50
FOLLOW_ON_START = timedelta(minutes=1)


def subscription_expected_next(*, subscription: Subscription, at: datetime, set_size: int) -> tuple[int, bool]:
    """(expected next sequence number, whether the set should be complete) at `at`, in its own set."""
    runs = subscription.schedule.run_times(after=subscription.created_at, until=at, count=set_size + 1)
    count = len(runs) + subscription.initial_sequence_number - 1
    if count >= set_size:
        return set_size, True
    return count + 1, False


@dataclass
class Place:
    messageset: MessageSet
    next_sequence_number: int
    completed: bool


def subscription_expected_place(*, subscription: Subscription, at: datetime, sizes: SetSizes) -> Place:
    """Where the subscription's lifecycle should be at `at`, following its sets' `next_set`."""
    messageset, schedule = subscription.messageset, subscription.schedule
    start, initial = subscription.created_at, subscription.initial_sequence_number
    for _ in range(MAX_FOLLOW_ON_SETS):
        size = sizes(messageset.pk, subscription.lang)
        needed = max(size - initial + 1, 0)  # run times until the set is complete
        runs = schedule.run_times(after=start, until=at, count=needed + 1)
        count = len(runs) + initial - 1
        if count < size:
            return Place(messageset, count + 1, False)
        if messageset.next_set_id is None:
            return Place(messageset, size, True)
        start = (runs[needed - 1] if needed else start) + FOLLOW_ON_START
        messageset = MessageSet.objects.select_related("default_schedule", "next_set").get(pk=messageset.next_set_id)
        schedule, initial = messageset.default_schedule, 1
    return Place(messageset, 1, False)


def behind_subscriptions_find(*, subscription_ids: list, at: datetime | None = None) -> list[BehindSubscription]:
    """Record each of the (ready) subscriptions that is behind where its schedule says it should be."""
    at = at or timezone.now()
    subscriptions = list(
        Subscription.objects.ready()
        .filter(pk__in=subscription_ids)
        .select_related("schedule", "messageset__default_schedule", "messageset__next_set")
    )
    sizes = SetSizes()
    sizes.load({(subscription.messageset_id, subscription.lang) for subscription in subscriptions})
    found = []
    for subscription in subscriptions:
        size = sizes(subscription.messageset_id, subscription.lang)
        expected_next, completed = subscription_expected_next(subscription=subscription, at=at, set_size=size)
        expected_sent = size if completed else expected_next - 1
        behind = expected_sent - (subscription.next_sequence_number - 1)
        if behind <= 0:
            continue
        place = subscription_expected_place(subscription=subscription, at=at, sizes=sizes)
        found.append(
            BehindSubscription(
                subscription=subscription,
                messages_behind=behind,
                current_messageset_id=subscription.messageset_id,
                current_sequence_number=subscription.next_sequence_number,
                expected_messageset=place.messageset,
                expected_sequence_number=place.next_sequence_number,
            )
        )
    return BehindSubscription.objects.bulk_create(found)


def behind_subscriptions_find_all() -> int:
    """Queue the check of every ready subscription, SEND_BATCH_SIZE per task; how many tasks."""
    from .. import tasks

    ready = Subscription.objects.ready().order_by("id").values_list("id", flat=True)
    after, queued = None, 0
    while True:
        page = ready if after is None else ready.filter(id__gt=after)
        ids = list(page[: settings.SEND_BATCH_SIZE])
        if not ids:
            return queued
        tasks.find_behind_in.delay_on_commit([str(subscription_id) for subscription_id in ids])
        queued += 1
        after = ids[-1]


def schedule_fires_on(*, schedules: Iterable[Schedule], day: date) -> dict[int, int]:
    """How many times each schedule fires on `day` (in SCHEDULE_TIME_ZONE); those that do not are left out."""
    day_start = datetime.combine(day, time.min, tzinfo=Schedule.time_zone())
    day_end = day_start + timedelta(days=1) - timedelta(microseconds=1)
    fires = {}
    for schedule in schedules:
        count = len(schedule.run_times(after=day_start - timedelta(microseconds=1), until=day_end, count=1440))
        if count:
            fires[schedule.pk] = count
    return fires


def estimated_sends_forecast(*, days: list[date]) -> dict[date, dict[int, int]]:
    """Estimated sends per message set id on each of `days`, counted as `estimated_sends_calculate` counts
    them (each ready subscription once per run time of its schedule that day), without recording them:
    one count of the ready subscriptions, whatever the number of days."""
    ready = (
        Subscription.objects.ready()
        .values("messageset_id", "schedule_id")
        .annotate(n=Count("id"))
        .values_list("messageset_id", "schedule_id", "n")
    )
    counts = list(ready.order_by())
    schedules = list(Schedule.objects.filter(pk__in={schedule_id for _, schedule_id, _ in counts}))
    forecast = {}
    for day in days:
        fires = schedule_fires_on(schedules=schedules, day=day)
        sends: dict[int, int] = defaultdict(int)
        for messageset_id, schedule_id, n in counts:
            if schedule_id in fires:
                sends[messageset_id] += n * fires[schedule_id]
        forecast[day] = dict(sends)
    return forecast


@transaction.atomic
def estimated_sends_calculate(*, day: date | None = None) -> list[EstimatedSend]:
    """Estimate, per message set, the sends of `day` (default today, in SCHEDULE_TIME_ZONE): each ready
    subscription once per run time of its schedule that day. Replaces that day's estimates."""
    day = day or timezone.now().astimezone(Schedule.time_zone()).date()
    ready = Subscription.objects.ready()
    schedule_ids = set(ready.values_list("schedule_id", flat=True).distinct())
    fires = schedule_fires_on(schedules=Schedule.objects.filter(pk__in=schedule_ids), day=day)
    sends: dict[int, int] = defaultdict(int)
    for row in ready.filter(schedule_id__in=fires).values("messageset_id", "schedule_id").annotate(n=Count("id")):
        sends[row["messageset_id"]] += row["n"] * fires[row["schedule_id"]]
    identities = dict(
        ready.filter(schedule_id__in=fires)
        .values("messageset_id")
        .annotate(n=Count("identity", distinct=True))
        .values_list("messageset_id", "n")
    )
    EstimatedSend.objects.filter(send_date=day).delete()
    return EstimatedSend.objects.bulk_create(
        EstimatedSend(
            send_date=day,
            messageset_id=messageset_id,
            estimate_subscriptions=total,
            estimate_identities=identities.get(messageset_id, 0),
        )
        for messageset_id, total in sorted(sends.items())
    )
