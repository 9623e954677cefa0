"""Writes and business rules of subscriptions and the send pipeline (keyword-only, `<entity>_<action>`)."""

from .lifecycle import (
    behind_subscriptions_find,
    behind_subscriptions_find_all,
    estimated_sends_calculate,
    estimated_sends_forecast,
    schedule_fires_on,
    subscription_expected_next,
    subscription_expected_place,
)
from .records import (
    subscription_create,
    subscription_deactivate,
    subscription_delete,
    subscription_request_defaults,
    subscription_update,
)
from .retention import send_runs_prune, send_runs_prune_batch
from .schedule_sends import schedule_send, send_batch_process, send_run_finish_if_done
from .sending import SendCounts
from .triggers import (
    behind_subscriptions_find_queue,
    estimated_sends_queue,
    resend_request_create,
    schedule_send_queue,
    subscription_failures_requeue,
    subscription_failures_requeue_all,
    subscription_failures_requeue_all_queue,
    subscription_failures_requeue_queue,
    subscription_resend,
    subscription_send_queue,
    subscription_send_refusal,
    subscriptions_send_next,
)

__all__ = [
    "SendCounts",
    "behind_subscriptions_find",
    "behind_subscriptions_find_all",
    "behind_subscriptions_find_queue",
    "estimated_sends_calculate",
    "estimated_sends_forecast",
    "estimated_sends_queue",
    "resend_request_create",
    "schedule_fires_on",
    "schedule_send",
    "schedule_send_queue",
    "send_batch_process",
    "send_run_finish_if_done",
    "send_runs_prune",
    "send_runs_prune_batch",
    "subscription_create",
    "subscription_deactivate",
    "subscription_delete",
    "subscription_expected_next",
    "subscription_expected_place",
    "subscription_failures_requeue",
    "subscription_failures_requeue_all",
    "subscription_failures_requeue_all_queue",
    "subscription_failures_requeue_queue",
    "subscription_request_defaults",
    "subscription_resend",
    "subscription_send_queue",
    "subscription_send_refusal",
    "subscription_update",
    "subscriptions_send_next",
]
