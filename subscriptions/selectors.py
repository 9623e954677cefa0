"""Reads of subscriptions and the send pipeline that are more than a one-line query."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Count, QuerySet
from django.utils import timezone

from contentstore.models import Message

from .models import BehindSubscription, EstimatedSend, SendBatch, SendRun, Subscription, SubscriptionSendFailure


def subscription_list() -> QuerySet[Subscription]:
    """Subscriptions with their message set, for listing and reading one."""
    return Subscription.objects.select_related("messageset")


def subscription_find(pk: str) -> Subscription | None:
    """The subscription with id `pk` (any text), or None when there is none or `pk` is no UUID."""
    try:
        return subscription_list().filter(pk=uuid.UUID(str(pk))).first()
    except ValueError:
        return None


def send_failure_list() -> QuerySet[SubscriptionSendFailure]:
    return SubscriptionSendFailure.objects.all()


def behind_subscription_list() -> QuerySet[BehindSubscription]:
    return BehindSubscription.objects.select_related("current_messageset", "expected_messageset")


def run_pending_subscriptions(run: SendRun) -> QuerySet[Subscription]:
    """The ready subscriptions a schedule send has still to handle, in id order."""
    return (
        Subscription.objects.ready()
        .filter(schedule_id=run.schedule_id, created_at__lte=run.started_at)
        .exclude(last_run_id=run.pk)
        .order_by("id")
    )


@dataclass(frozen=True)
class PipelineFigures:
    """What the send pipeline's gauges show."""

    batches_pending: int
    subscriptions_ready: int
    estimates_today: dict[str, int]  # message set short name -> subscriptions


def pipeline_figures() -> PipelineFigures:
    estimates = EstimatedSend.objects.filter(send_date=timezone.localdate()).select_related("messageset")
    return PipelineFigures(
        batches_pending=SendBatch.objects.filter(done_at__isnull=True, run__finished_at__isnull=True).count(),
        subscriptions_ready=Subscription.objects.ready().count(),
        estimates_today={estimate.messageset.short_name: estimate.estimate_subscriptions for estimate in estimates},
    )


class SetSizes:
    """The number of messages per (set, language), read once per pair."""

    def __init__(self) -> None:
        self._sizes: dict[tuple[int, str], int] = {}

    def load(self, pairs: set[tuple[int, str]]) -> None:
        wanted = pairs - set(self._sizes)
        if not wanted:
            return
        self._sizes.update(dict.fromkeys(wanted, 0))
        rows = (
            Message.objects.filter(
                messageset_id__in={set_id for set_id, _ in wanted}, lang__in={lang for _, lang in wanted}
            )
            .values("messageset_id", "lang")
            .annotate(size=Count("id"))
        )
        for row in rows:
            if (row["messageset_id"], row["lang"]) in wanted:
                self._sizes[(row["messageset_id"], row["lang"])] = row["size"]

    def __call__(self, messageset_id: int, lang: str) -> int:
        self.load({(messageset_id, lang)})
        return self._sizes[(messageset_id, lang)]
