"""Creating, changing and deleting subscriptions."""

from typing import Any

from accounts.models import User
from core.services import model_set_and_validate

from .. import events
from ..models import Subscription

# Set by the services from who asks, never from the subscription's fields.
AUTHORS = ("created_by", "updated_by")


def _save(subscription: Subscription, fields: dict[str, Any]) -> Subscription:
    model_set_and_validate(subscription, fields, fixed=AUTHORS, exclude=AUTHORS)
    subscription.save()
    return subscription


def subscription_create(*, created_by: User | None = None, via: str = "api", **fields: Any) -> Subscription:
    """A new subscription; `fields` are the model's (identity, messageset, lang, schedule required).
    `via` says where the request came from (api, hub, admin), for its event."""
    subscription = _save(Subscription(created_by=created_by, updated_by=created_by), fields)
    if events.enabled():
        events.publish_on_commit([events.subscription_created(subscription, via=via)])
    return subscription


def subscription_update(*, subscription: Subscription, updated_by: User | None = None, **fields: Any) -> Subscription:
    subscription.updated_by = updated_by
    return _save(subscription, fields)


def subscription_delete(*, subscription: Subscription) -> None:
    """Delete the subscription with its failures, resend requests and behind reports."""
    subscription.delete()


def subscription_deactivate(*, subscription: Subscription, updated_by: User | None = None) -> Subscription:
    """Stop sending to the subscription (it keeps its position)."""
    return subscription_update(subscription=subscription, updated_by=updated_by, active=False)


def subscription_request_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """The Hub webhook's subscription data with the reference's defaults filled in:
    `metadata` {} and `initial_sequence_number` the given `next_sequence_number`."""
    data = dict(data)
    data.setdefault("metadata", {})
    if "initial_sequence_number" not in data and "next_sequence_number" in data:
        data["initial_sequence_number"] = data["next_sequence_number"]
    return data
