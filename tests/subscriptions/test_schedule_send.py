"""What a schedule fire does to subscriptions: who is sent, how they move on, and only once."""

import pytest
from django.db.models import Sum

from subscriptions import services
from subscriptions.models import SendBatch, SendRun, Subscription, SubscriptionSendFailure

from .factories import MONDAY_8AM, fresh, make_messages, make_messageset, make_schedule, make_subscription, week
from .helpers import assert_waits_for

pytestmark = pytest.mark.django_db


def _state(subscription) -> dict:
    subscription = fresh(subscription)
    return {
        name: getattr(subscription, name)
        for name in (
            "next_sequence_number",
            "active",
            "completed",
            "process_status",
            "metadata",
            "updated_at",
            "messageset_id",
        )
    }


def test_only_ready_subscriptions_on_the_fired_schedule_are_sent(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 3)
    other_schedule = make_schedule(hour="9")
    ready = make_subscription(messageset, identity="ready")
    untouched = [
        make_subscription(messageset, identity="elsewhere", schedule=other_schedule),
        make_subscription(messageset, identity="inactive", active=False),
        make_subscription(messageset, identity="completed", completed=True),
        make_subscription(messageset, identity="in-process", process_status=1),
        make_subscription(messageset, identity="no-address", process_status=-1),
    ]
    before = [_state(subscription) for subscription in untouched]

    fire(messageset.default_schedule)

    assert [payload["to_identity"] for payload in sender.payloads()] == ["ready"]
    assert fresh(ready).next_sequence_number == 2
    assert [_state(subscription) for subscription in untouched] == before


def test_each_fire_advances_a_subscription_by_one(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 5)
    subscription = make_subscription(messageset)

    for number in range(3):
        fire(messageset.default_schedule, at=week(number))

    assert [payload["content"] for payload in sender.payloads()] == [
        "Message 1 in eng",
        "Message 2 in eng",
        "Message 3 in eng",
    ]
    assert_waits_for(subscription, 4)


def test_a_second_fire_in_the_same_period_sends_nothing(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 5)
    subscription = make_subscription(messageset)

    first = fire(messageset.default_schedule, at=MONDAY_8AM)
    second = fire(messageset.default_schedule, at=MONDAY_8AM.replace(hour=15))

    assert first.pk == second.pk
    assert first.period_start == MONDAY_8AM
    assert len(sender.payloads()) == 1
    assert fresh(subscription).next_sequence_number == 2


def test_a_fire_a_little_early_counts_for_the_coming_run_time(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 5)
    make_subscription(messageset)

    run = fire(messageset.default_schedule, at=MONDAY_8AM.replace(hour=7, minute=59, second=58))

    assert run.period_start == MONDAY_8AM


def test_the_last_message_completes_the_subscription_and_starts_the_next_set(sender, fire):
    next_schedule = make_schedule(day_of_week="3")
    child = make_messageset("child", schedule=next_schedule)
    baby = make_messageset("baby", next_set=child)
    make_messages(baby, 2)
    subscription = make_subscription(baby, identity="mother", lang="eng", next_sequence_number=2)

    fire(baby.default_schedule)

    done = fresh(subscription)
    assert (done.completed, done.active, done.process_status, done.next_sequence_number) == (True, False, 2, 2)
    follower = Subscription.objects.get(messageset=child)
    assert follower.identity == "mother"
    assert follower.lang == "eng"
    assert follower.schedule == next_schedule
    assert (follower.next_sequence_number, follower.initial_sequence_number) == (1, 1)
    assert follower.is_ready


def test_the_last_message_of_a_set_without_a_next_set_just_completes(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 1)
    subscription = make_subscription(messageset)

    fire(messageset.default_schedule)

    assert (fresh(subscription).completed, fresh(subscription).active) == (True, False)
    assert Subscription.objects.count() == 1


def test_a_next_set_on_the_same_schedule_waits_for_the_next_period(sender, fire):
    schedule = make_schedule()
    child = make_messageset("child", schedule=schedule)
    make_messages(child, 2, lang="eng")
    baby = make_messageset("baby", schedule=schedule, next_set=child)
    make_messages(baby, 1)
    make_subscription(baby)

    fire(schedule, at=week(0))
    assert [payload["content"] for payload in sender.payloads()] == ["Message 1 in eng"]

    fire(schedule, at=week(1))
    assert len(sender.payloads()) == 2
    assert Subscription.objects.get(messageset=child).next_sequence_number == 2


def test_a_missing_message_is_recorded_and_nothing_is_sent_or_changed(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 2)
    subscription = make_subscription(messageset, next_sequence_number=3)
    before = _state(subscription)

    fire(messageset.default_schedule)

    assert sender.requests() == []
    assert _state(subscription) == before
    failure = SubscriptionSendFailure.objects.get()
    assert failure.subscription_id == subscription.pk
    assert failure.reason == "Missing message: MessageSet: <baby>, Sequence Number: <3>, Lang: <eng>"


def test_a_message_missing_in_the_subscriptions_language_is_missing(sender, fire):
    messageset = make_messageset()
    make_messages(messageset, 2, lang="zul")
    subscription = make_subscription(messageset, lang="eng")
    before = _state(subscription)

    fire(messageset.default_schedule)

    assert sender.requests() == []
    assert _state(subscription) == before


def test_a_subscription_without_an_address_gets_process_status_minus_one(identity_store, fire):
    messageset = make_messageset()
    make_messages(messageset, 2)
    subscription = make_subscription(messageset, identity="nobody")
    identity_store.addresses({"nobody": None})

    fire(messageset.default_schedule)

    assert identity_store.requests() == []
    assert fresh(subscription).process_status == -1
    assert fresh(subscription).next_sequence_number == 1


def test_a_dry_run_set_skips_only_the_post(sender, fire, settings):
    messageset = make_messageset()
    settings.DRY_RUN_MESSAGESETS = [messageset.pk]
    make_messages(messageset, 2)
    subscription = make_subscription(messageset, metadata={"prepend_next_delivery": "Hi"})

    fire(messageset.default_schedule)

    assert sender.requests() == []
    assert fresh(subscription).next_sequence_number == 2
    assert fresh(subscription).metadata == {"prepend_next_delivery": None}


def test_a_fire_walks_subscriptions_in_batches_and_finishes(sender, fire, settings):
    settings.SEND_BATCH_SIZE = 2
    messageset = make_messageset()
    make_messages(messageset, 3)
    for number in range(5):
        make_subscription(messageset, identity=f"id-{number}")

    run = fire(messageset.default_schedule)

    run.refresh_from_db()
    assert run.finished_at is not None
    assert sorted(SendBatch.objects.filter(run=run).values_list("size", flat=True)) == [1, 2, 2]
    assert SendBatch.objects.filter(run=run).aggregate(sent=Sum("sent"))["sent"] == 5
    assert sorted(payload["to_identity"] for payload in sender.payloads()) == [f"id-{number}" for number in range(5)]


def test_a_fire_resumes_a_send_whose_batches_were_lost(sender, fire, settings, django_capture_on_commit_callbacks):
    settings.SEND_BATCH_SIZE = 2
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscriptions = [make_subscription(messageset, identity=f"id-{number}") for number in range(5)]
    with django_capture_on_commit_callbacks(execute=False) as lost:  # queued, never run: a worker lost them
        run = services.schedule_send(schedule_id=messageset.default_schedule_id, at=MONDAY_8AM)
    assert len(lost) == 3
    assert sender.requests() == []

    again = fire(messageset.default_schedule, at=MONDAY_8AM.replace(minute=30))

    assert again.pk == run.pk
    again.refresh_from_db()
    assert again.finished_at is not None
    assert sorted(payload["to_identity"] for payload in sender.payloads()) == [f"id-{number}" for number in range(5)]
    assert all(fresh(subscription).next_sequence_number == 2 for subscription in subscriptions)


def test_a_lost_batch_run_late_sends_nothing_twice(sender, fire, settings, django_capture_on_commit_callbacks):
    settings.SEND_BATCH_SIZE = 10
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    with django_capture_on_commit_callbacks(execute=False):
        services.schedule_send(schedule_id=messageset.default_schedule_id, at=MONDAY_8AM)
    lost_batch = SendBatch.objects.get()
    fire(messageset.default_schedule, at=MONDAY_8AM)

    assert services.send_batch_process(batch_id=lost_batch.pk, subscription_ids=[str(subscription.pk)]) is None
    assert len(sender.payloads()) == 1
    assert fresh(subscription).next_sequence_number == 2


def test_the_next_periods_send_closes_an_unfinished_one_and_sends_its_leftovers(
    sender, fire, django_capture_on_commit_callbacks
):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    with django_capture_on_commit_callbacks(execute=False):
        stuck = services.schedule_send(schedule_id=messageset.default_schedule_id, at=week(0))

    fire(messageset.default_schedule, at=week(1))

    stuck.refresh_from_db()
    assert stuck.abandoned and stuck.finished_at is not None
    assert SendRun.objects.filter(finished_at__isnull=True).count() == 0
    assert [payload["content"] for payload in sender.payloads()] == ["Message 1 in eng"]
    assert fresh(subscription).next_sequence_number == 2
