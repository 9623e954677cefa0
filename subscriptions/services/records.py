"""Creating, changing and deleting subscriptions."""

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from accounts.models import User

from ..models import Subscription

SUBSCRIPTION_FIELDS = {
    "identity",
    "version",
    "messageset",
    "initial_sequence_number",
    "next_sequence_number",
    "lang",
    "active",
    "completed",
    "schedule",
    "process_status",
    "metadata",
}


def _validated(subscription: Subscription) -> None:
    try:
        subscription.full_clean(exclude=["created_by", "updated_by"])
    except ValidationError as error:
        if hasattr(error, "error_dict") and NON_FIELD_ERRORS in error.error_dict:
            error.error_dict["non_field_errors"] = error.error_dict.pop(NON_FIELD_ERRORS)
        raise


def _set_fields(subscription: Subscription, fields: dict[str, Any]) -> None:
    unknown = set(fields) - SUBSCRIPTION_FIELDS
    if unknown:
        raise TypeError(f"Unknown subscription field(s): {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(subscription, name, value)


def subscription_create(*, created_by: User | None = None, **fields: Any) -> Subscription:
    """A new subscription; `fields` are the model's (identity, messageset, lang, schedule required)."""
    subscription = Subscription(created_by=created_by, updated_by=created_by)
    _set_fields(subscription, fields)
    _validated(subscription)
    subscription.save()
    return subscription


def subscription_update(*, subscription: Subscription, updated_by: User | None = None, **fields: Any) -> Subscription:
    _set_fields(subscription, fields)
    subscription.updated_by = updated_by
    _validated(subscription)
    subscription.save()
    return subscription


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
