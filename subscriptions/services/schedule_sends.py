"""Schedule sends: a fire of a schedule sends every ready subscription on it its next message.

A send is a `SendRun`, one per schedule and cron period (from one of the
schedule's run times to the next), so however often a schedule is fired in a
period - by its periodic task, by `POST schedule/{id}/send/`, twice, or by two
fires at once - each subscription is sent one message for that period:

- The first fire of a period creates the run; the others find it (a unique
  constraint on schedule and period decides between fires that race).
- A fire **walks** the run's subscriptions (ready, on the schedule, created before
  the run started, not yet handled by it) in id order, SEND_BATCH_SIZE ids at a
  time (keyset pagination: never all in memory), and queues one send task per
  batch. Only one fire walks a run at a time (a PostgreSQL advisory lock, freed
  when its holder's connection ends); a fire that finds the run being walked
  leaves it to that walk.
- Each send task locks its subscriptions and stamps each one it handles with the
  run (`last_run`) in the transaction that advances it, so a subscription is
  handled once per run whatever overlaps.
- A fire that finds its period's run unfinished (a worker was killed, say) takes
  up where it stopped: queued batches that no task holds are dropped and the
  subscriptions not yet handled are walked again. A finished run makes a fire
  a no-op.
- A run still unfinished when the next period's run starts is closed as
  abandoned; its leftovers are sent by the new run.

A fire up to EARLY_FIRE_SECONDS before a run time counts for that run time's
period, so that a scheduler whose clock runs slightly ahead does not fire into
the period before.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from contentstore.models import Schedule

from .. import metrics
from ..models import SendBatch, SendRun
from ..selectors import run_pending_subscriptions
from .sending import SendCounts, lock_ready, send_locked

logger = logging.getLogger(__name__)

EARLY_FIRE_SECONDS = 5


def period_start(schedule: Schedule, at: datetime) -> datetime:
    """The start of the period a fire at `at` is for (EARLY_FIRE_SECONDS early counts for the next)."""
    return schedule.period_start(at + timedelta(seconds=EARLY_FIRE_SECONDS))


def _drop_idle_batches(run_ids: list[uuid.UUID]) -> int:
    """Delete the unfinished batches of the runs that no send task holds (queued, or lost with a worker)."""
    with transaction.atomic():
        idle = list(
            SendBatch.objects.select_for_update(skip_locked=True)
            .filter(run_id__in=run_ids, done_at__isnull=True)
            .values_list("pk", flat=True)
        )
        SendBatch.objects.filter(pk__in=idle).delete()
    return len(idle)


def _period_run(schedule: Schedule, period: datetime) -> tuple[SendRun, bool]:
    """The run of `schedule` for `period`, created (closing older unfinished runs) when there is none."""
    run, created = SendRun.objects.get_or_create(schedule=schedule, period_start=period)
    if created:
        metrics.record("sbm_schedule_sends_started")
        stale = list(
            SendRun.objects.filter(schedule=schedule, finished_at__isnull=True, period_start__lt=period).values_list(
                "pk", flat=True
            )
        )
        if stale:
            SendRun.objects.filter(pk__in=stale).update(finished_at=timezone.now(), abandoned=True)
            _drop_idle_batches(stale)
            logger.warning(
                "Schedule %s: unfinished sends %s closed; their leftovers go with %s.", schedule.pk, stale, run.pk
            )
    return run, created


@contextmanager
def _walk_lock(run: SendRun) -> Iterator[bool]:
    """Whether this fire may walk the run: no other fire is walking it (PostgreSQL; elsewhere always)."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = int.from_bytes(run.pk.bytes[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _queue_batch(batch: SendBatch, subscription_ids: list) -> None:
    from .. import tasks

    tasks.send_batch.delay_on_commit(batch.pk, [str(subscription_id) for subscription_id in subscription_ids])


def _walk(run: SendRun) -> int:
    """Queue a send task for each SEND_BATCH_SIZE subscriptions the run has not handled; how many."""
    pending = run_pending_subscriptions(run)
    after, batches = None, 0
    while True:
        page = pending if after is None else pending.filter(id__gt=after)
        ids = list(page.values_list("id", flat=True)[: settings.SEND_BATCH_SIZE])
        if not ids:
            break
        batch = SendBatch.objects.create(run=run, size=len(ids))
        _queue_batch(batch, ids)
        batches += 1
        after = ids[-1]
    SendRun.objects.filter(pk=run.pk).update(walked_at=timezone.now())
    return batches


def send_run_finish_if_done(*, run_id: uuid.UUID) -> bool:
    """Mark the run finished when it has been walked and each of its batches is done."""
    now = timezone.now()
    pending = SendBatch.objects.filter(run_id=OuterRef("pk"), done_at__isnull=True)
    finished = (
        SendRun.objects.filter(pk=run_id, finished_at__isnull=True, walked_at__isnull=False)
        .exclude(Exists(pending))
        .update(finished_at=now)
    )
    if finished:
        run = SendRun.objects.get(pk=run_id)
        metrics.observe("sbm_schedule_send_duration_seconds", (now - run.started_at).total_seconds())
        logger.info("%s finished.", run)
    return bool(finished)


def schedule_send(*, schedule_id: int, at: datetime | None = None) -> SendRun | None:
    """Fire the schedule: send every ready subscription on it its next message, once per cron period.

    `at` is the time the fire is for (default now): its period's run is created,
    resumed, or found finished (then nothing is sent).
    """
    schedule = Schedule.objects.filter(pk=schedule_id).first()
    if schedule is None:
        logger.warning("Schedule %s no longer exists; nothing to send.", schedule_id)
        return None
    logger.info("Schedule %s (%s) fired.", schedule.pk, schedule.cron_string)
    run, created = _period_run(schedule, period_start(schedule, at or timezone.now()))
    if run.finished_at is not None:
        logger.info("%s has already finished; this fire sends nothing.", run)
        return run
    with _walk_lock(run) as acquired:
        if not acquired:
            logger.info("%s is being walked by another fire; this one leaves it to that.", run)
            return run
        if not created:
            dropped = _drop_idle_batches([run.pk])
            logger.info("%s resumed (%s idle batches dropped).", run, dropped)
        batches = _walk(run)
    logger.info("%s: %s batches queued.", run, batches)
    send_run_finish_if_done(run_id=run.pk)
    return run


def send_batch_process(*, batch_id: int, subscription_ids: list, task_id: uuid.UUID | None = None) -> SendCounts | None:
    """Send a batch of a schedule send; None when the batch is done, dropped or held by another task."""
    recorder = metrics.Recorder()
    started, initiated_at = time.monotonic(), timezone.now()
    with transaction.atomic():
        batch = (
            SendBatch.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("run")
            .filter(pk=batch_id, done_at__isnull=True)
            .first()
        )
        if batch is None:
            return None
        subscriptions = lock_ready(subscription_ids, run=batch.run)
        counts = send_locked(
            subscriptions,
            run=batch.run,
            task_id=task_id or uuid.uuid4(),
            initiated_at=initiated_at,
            recorder=recorder,
        )
        SendBatch.objects.filter(pk=batch.pk).update(
            done_at=timezone.now(), sent=counts.sent, failed=counts.failed, skipped=counts.skipped
        )
    recorder.observe("sbm_send_batch_duration_seconds", time.monotonic() - started)
    recorder.flush()
    send_run_finish_if_done(run_id=batch.run_id)
    return counts
