"""Retention: finished jobs, with their attempts, are deleted once they are old enough.

Succeeded and cancelled jobs go JOBS_RETENTION_DAYS after they finished; failed ones
(the dead-letter list) JOBS_DEAD_RETENTION_DAYS after. Jobs still scheduled or running
are never touched, whatever their age.

Deleting goes in batches of JOBS_RETENTION_BATCH jobs, each its own short transaction:
it locks only the jobs it picks (`FOR UPDATE SKIP LOCKED`, found through the index on
finish times, `jobs_job_finished`, which holds no scheduled or running job, so the
claim path neither reads nor waits for it), deletes the rows that refer to them (their
attempts, a topic webhook's record of the delivery), then the jobs. No statement
reaches past its batch.

Some finished jobs are kept past their time, so that nothing that refers to them breaks:
- a job whose callback is still kept: deleting it would take the callback with it
  (`on_delete=CASCADE`). The callback goes first (it finished later), the job with a
  later batch;
- a job that something holds as its current one (a relation that does not cascade, such
  as a topic webhook's `pending` delivery, which the webhook's next message is ordered
  after): it goes once that moved on.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Exists, OuterRef

from .. import clock
from ..models import Job, JobState


@dataclass
class Pruned:
    """What one pruning deleted, by what (`jobs`, `dead`, `attempts`, `webhook_deliveries`), in how many
    batches, and the longest a batch's transaction took (what it held its locks for), in seconds."""

    counts: Counter = field(default_factory=Counter)
    batches: int = 0
    longest_batch: float = 0.0


def _rules(now: datetime) -> list[tuple[str, str, datetime]]:
    """(finished state, what its jobs are counted as, the finish time before which they go)."""
    finished = now - timedelta(days=settings.JOBS_RETENTION_DAYS)
    dead = now - timedelta(days=settings.JOBS_DEAD_RETENTION_DAYS)
    return [
        (JobState.SUCCEEDED, "jobs", finished),
        (JobState.CANCELLED, "jobs", finished),
        (JobState.FAILED, "dead", dead),
    ]


def _relations() -> tuple[list[tuple[type[models.Model], str, str]], list[tuple[type[models.Model], str]]]:
    """What refers to a job, from the models: rows deleted with it (model, column, what they are
    counted as), and holders that keep it (model, field name). Callbacks are neither: see `_prunable`."""
    dependents, holders = [], []
    relations = [
        field for field in Job._meta.get_fields(include_hidden=True) if field.auto_created and not field.concrete
    ]  # hidden ones too: a holder's relation often has no name on the job (related_name="+")
    for relation in relations:
        if relation.related_model is Job:
            continue
        if relation.on_delete is models.CASCADE:
            what = str(relation.related_model._meta.verbose_name_plural).replace(" ", "_")
            dependents.append((relation.related_model, relation.field.column, what))
        else:
            holders.append((relation.related_model, relation.field.name))
    return dependents, holders


def _prunable(state: str, before: datetime):
    """Jobs in `state` that finished before `before`, with no callback left and no holder."""
    _, holders = _relations()
    jobs = Job.objects.filter(state=state, finished_at__lt=before).exclude(
        Exists(Job.objects.filter(parent=OuterRef("pk")))
    )
    for model, name in holders:
        jobs = jobs.exclude(Exists(model.objects.filter(**{name: OuterRef("pk")})))
    return jobs


def _delete(table: str, column: str, ids: list) -> int:
    """Delete the rows of `table` whose `column` is one of `ids` (nothing else runs: what refers to them
    is deleted first); how many."""
    quote = connection.ops.quote_name
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        sql = f"DELETE FROM {quote(table)} WHERE {quote(column)} IN ({placeholders})"  # noqa: S608 (names from the models)
        cursor.execute(sql, ids)
        return cursor.rowcount


def jobs_prune_batch(*, state: str, before: datetime, limit: int) -> Counter:
    """Delete up to `limit` jobs in `state` finished before `before` (those no other transaction holds),
    with the rows that refer to them, in one transaction; what was deleted: {table's what: count}, the
    jobs under "jobs"."""
    dependents, _ = _relations()
    deleted: Counter = Counter()
    with transaction.atomic():
        ids = list(
            _prunable(state, before)
            .select_for_update(skip_locked=True)
            .order_by("finished_at")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return deleted
        for model, column, what in dependents:
            deleted[what] += _delete(model._meta.db_table, column, ids)
        deleted["jobs"] = _delete(Job._meta.db_table, Job._meta.pk.column, ids)
    return deleted


def jobs_prune(*, now: datetime | None = None, limit: int | None = None, seconds: float | None = None) -> Pruned:
    """Delete the finished jobs past their retention, a batch of `limit` (JOBS_RETENTION_BATCH) per
    transaction, oldest first, until a batch finds none (a job kept for its callback goes in a batch
    after the callback's, or in the next run) or `seconds` have gone by (the rest waits for the next run);
    what was deleted."""
    now = now or clock.now()
    limit = limit or settings.JOBS_RETENTION_BATCH
    stop = None if seconds is None else time.monotonic() + seconds
    pruned = Pruned()
    for state, what, before in _rules(now):
        while stop is None or time.monotonic() < stop:
            started = time.monotonic()
            deleted = jobs_prune_batch(state=state, before=before, limit=limit)
            pruned.longest_batch = max(pruned.longest_batch, time.monotonic() - started)
            if not deleted:
                break
            pruned.batches += 1
            deleted[what] = deleted.pop("jobs")
            pruned.counts.update(+deleted)  # only what was deleted
    return pruned
