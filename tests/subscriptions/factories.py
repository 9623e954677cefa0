"""Plain factory functions for subscriptions, built through the services, beside the content store's."""

from datetime import UTC, datetime, timedelta

from contentstore.models import BinaryContent, Message, MessageSet, Schedule
from subscriptions import services
from subscriptions.models import Subscription
from tests.contentstore.factories import PNG_BYTES, make_binary_content, make_message

# The content store's factories; the tests here import make_messageset and make_schedule from this module.
from tests.contentstore.factories import make_messageset as make_messageset
from tests.contentstore.factories import make_schedule as make_schedule

# A Monday at 08:00 UTC: the run time of the default schedule below, and weekly after it.
MONDAY_8AM = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)


def make_messages(messageset: MessageSet, count: int, lang: str = "eng", **fields) -> list[Message]:
    """Messages 1 to `count` of the set, in `lang`."""
    return [make_message(messageset, number, lang, **fields) for number in range(1, count + 1)]


def make_file(name: str = "picture.png", data: bytes = PNG_BYTES) -> BinaryContent:
    return make_binary_content(name, data)


def make_subscription(messageset: MessageSet, *, schedule: Schedule | None = None, **fields) -> Subscription:
    fields.setdefault("identity", "8646b7bc-b511-4965-a90b-e1145e398703")
    fields.setdefault("lang", "eng")
    return services.subscription_create(
        messageset=messageset, schedule=schedule or messageset.default_schedule, **fields
    )


def fresh(subscription: Subscription) -> Subscription:
    return Subscription.objects.get(pk=subscription.pk)


def week(number: int) -> datetime:
    """The run time of the weekly default schedule, `number` weeks after the first."""
    return MONDAY_8AM + timedelta(weeks=number)
