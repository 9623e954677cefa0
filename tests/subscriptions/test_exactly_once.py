"""Exactly once, with real concurrency: fires that overlap, batches that overlap, a worker killed mid-batch."""

import sys
import threading
import time
from collections import Counter

import pytest
from django.db import connections
from django.utils import timezone

from harness.processes import Process
from harness.waiting import wait_until
from subscriptions import services, tasks
from subscriptions.models import SendBatch, SendRun, Subscription
from subscriptions.services.schedule_sends import period_start
from tests.processes import child_environment
from tests.worker import running_worker

from .conftest import accepted
from .factories import MONDAY_8AM, make_messages, make_messageset, make_subscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(transactional_db):
    """A real Celery worker in a thread of this process, on the test broker."""
    with running_worker():
        yield


def _slow(seconds: float):
    def handler(request):
        time.sleep(seconds)
        return accepted(request)

    return handler


def _in_threads(count: int, target) -> None:
    """Run `target()` in `count` threads released at the same moment."""
    barrier = threading.Barrier(count)
    errors = []

    def run():
        try:
            barrier.wait()
            target()
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def _sends_per_subscription(sender) -> Counter:
    return Counter(request.headers["Idempotency-Key"].split(":")[0] for request in sender.requests())


def test_two_concurrent_fires_of_the_same_schedule_send_each_message_once(sender, settings, worker):
    settings.SEND_BATCH_SIZE = 3
    sender.answer(_slow(0.005))
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscriptions = [make_subscription(messageset, identity=f"id-{number}") for number in range(20)]
    schedule_id = messageset.default_schedule_id

    _in_threads(2, lambda: tasks.send_schedule.delay(schedule_id))
    _in_threads(2, lambda: services.schedule_send(schedule_id=schedule_id))

    wait_until(
        lambda: SendRun.objects.filter(finished_at__isnull=False).exists(), what="the send to finish", timeout=20
    )
    assert SendRun.objects.count() == 1
    counts = _sends_per_subscription(sender)
    assert counts == Counter({str(subscription.pk): 1 for subscription in subscriptions})
    assert set(Subscription.objects.values_list("next_sequence_number", flat=True)) == {2}


def test_overlapping_batches_of_one_send_send_each_subscription_once(sender):
    sender.answer(_slow(0.01))
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscriptions = [make_subscription(messageset, identity=f"id-{number}") for number in range(10)]
    run = SendRun.objects.create(
        schedule=messageset.default_schedule, period_start=period_start(messageset.default_schedule, MONDAY_8AM)
    )
    ids = [str(subscription.pk) for subscription in subscriptions]
    batches = iter([SendBatch.objects.create(run=run, size=10), SendBatch.objects.create(run=run, size=10)])
    lock = threading.Lock()

    def process():
        with lock:
            batch = next(batches)
        services.send_batch_process(batch_id=batch.pk, subscription_ids=ids)

    _in_threads(2, process)

    assert _sends_per_subscription(sender) == Counter({subscription_id: 1 for subscription_id in ids})
    assert set(Subscription.objects.values_list("next_sequence_number", flat=True)) == {2}
    assert sorted(SendBatch.objects.values_list("sent", flat=True)) == [0, 10]


def test_a_worker_killed_mid_batch_advances_nothing_and_a_new_fire_finishes_the_job(sender, settings, fire):
    """The sender accepted some messages, then the worker died before recording them: nothing was
    advanced; the next fire sends them again under the same idempotency key, and the rest once."""
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscriptions = [make_subscription(messageset, identity=f"id-{number}") for number in range(5)]
    schedule = messageset.default_schedule
    run = SendRun.objects.create(schedule=schedule, period_start=period_start(schedule, MONDAY_8AM))
    batch = SendBatch.objects.create(run=run, size=5)
    SendRun.objects.filter(pk=run.pk).update(walked_at=timezone.now())

    third_arrived, killed = threading.Event(), threading.Event()
    received = []  # the idempotency key of each message the sender took in

    def handler(request):
        received.append(request.headers["Idempotency-Key"])
        if len(received) == 3:  # taken in, but the answer will find the worker dead
            third_arrived.set()
            killed.wait(10)
        return accepted(request)

    sender.answer(handler)
    code = (
        "import django; django.setup(); from subscriptions import services; "
        f"services.send_batch_process(batch_id={batch.pk}, subscription_ids={[str(s.pk) for s in subscriptions]})"
    )
    environment = child_environment(SEND_CONCURRENCY="1", MESSAGE_SENDER_URL=sender.url)
    child = Process("sender", [sys.executable, "-c", code], env=environment).start()
    try:
        assert third_arrived.wait(30), "the child never reached its third message"
    finally:
        child.kill()
        killed.set()
    accepted_before = list(received)
    assert len(accepted_before) == 3
    assert set(Subscription.objects.values_list("next_sequence_number", flat=True)) == {1}

    fire(schedule, at=MONDAY_8AM)

    keys = Counter(received)
    duplicated = {key for key, count in keys.items() if count > 1}
    assert duplicated == set(accepted_before)
    assert all(count <= 2 for count in keys.values())
    assert len(keys) == 5
    assert set(Subscription.objects.values_list("next_sequence_number", flat=True)) == {2}
    run.refresh_from_db()
    assert run.finished_at is not None
