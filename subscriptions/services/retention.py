"""Retention of schedule sends: finished send runs, with their batches, are deleted once they
are SEND_RUN_RETENTION_DAYS old (counted from when they finished).

A run is what makes a schedule send each subscription once per cron period (a fire that finds
its period's run finished does nothing), so each schedule's latest run is kept whatever its
age: firing the schedule again in that period must still find it.

Deleting goes in short transactions of at most JOBS_RETENTION_BATCH rows: first the batches of
the runs that go, then the runs that have none left. Deleting a run lets go of the subscriptions
that name it as their last run (`last_run` is set to NULL). That column is deliberately not
indexed (a send's update of a subscription stays on its page), so each batch of runs reads the
subscriptions table once; it changes, and locks, only rows that no send has touched since.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ..models import SendBatch, SendRun


def _prunable_runs(before: datetime):
    """Runs finished before `before` that are not their schedule's latest."""
    later = SendRun.objects.filter(schedule=OuterRef("schedule"), period_start__gt=OuterRef("period_start"))
    return SendRun.objects.filter(finished_at__lt=before).filter(Exists(later))


def send_runs_prune_batch(*, before: datetime, limit: int) -> Counter:
    """One transaction: delete up to `limit` batches of the runs that go or, when none is left, up to
    `limit` of those runs; what was deleted ({"send_batches": n} or {"send_runs": n})."""
    with transaction.atomic():
        batch_ids = list(
            SendBatch.objects.filter(run__in=_prunable_runs(before)).order_by().values_list("pk", flat=True)[:limit]
        )
        if batch_ids:
            return Counter(send_batches=SendBatch.objects.filter(pk__in=batch_ids).delete()[0])
        run_ids = list(
            _prunable_runs(before)
            .select_for_update(skip_locked=True)
            .order_by("finished_at")
            .values_list("pk", flat=True)[:limit]
        )
        if not run_ids:
            return Counter()
        _, deleted = SendRun.objects.filter(pk__in=run_ids).delete()
        return Counter(send_runs=deleted.get(SendRun._meta.label, 0))


def send_runs_prune(*, now: datetime | None = None, limit: int | None = None) -> Counter:
    """Delete the finished send runs past SEND_RUN_RETENTION_DAYS (and their batches), a batch of `limit`
    (JOBS_RETENTION_BATCH) rows per transaction, until none is left; what was deleted."""
    before = (now or timezone.now()) - timedelta(days=settings.SEND_RUN_RETENTION_DAYS)
    limit = limit or settings.JOBS_RETENTION_BATCH
    pruned: Counter = Counter()
    while deleted := send_runs_prune_batch(before=before, limit=limit):
        pruned.update(deleted)
    return pruned
