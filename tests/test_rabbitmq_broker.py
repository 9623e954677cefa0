"""RabbitMQ as the Celery broker: the send pipeline and job deliveries run on it unchanged.

Against the RabbitMQ at 127.0.0.1:5672 (guest/guest), in a vhost of this module's own,
made with `rabbitmqctl` and deleted after, so runs never see each other's messages.
RabbitMQ not running is a failure that says so, never a skip (`.ci/run` starts it).
Workers are real: one in a thread of this process, and one in a process of its own for
the kill, whose unacked task RabbitMQ gives to the next worker.
"""

import json
import shutil
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from django.db import transaction

from config.celery import app as celery_app
from config.celery import broker_is_rabbitmq, broker_transport_options
from harness.peer import RecordingPeer
from harness.processes import Process
from harness.waiting import port_open, wait_until
from jobs import services as job_services
from jobs.dispatcher import dispatch_once
from jobs.models import Job, JobState
from subscriptions import tasks
from subscriptions.metrics import _broker_queue_length
from subscriptions.models import SendBatch, SendRun, Subscription
from tests.processes import child_environment
from tests.subscriptions.factories import make_messages, make_messageset, make_subscription
from tests.worker import running_worker, using_broker

pytestmark = pytest.mark.django_db(transaction=True)

HOST, PORT = "127.0.0.1", 5672
SUBSCRIPTIONS = 5


def _rabbitmqctl(*args: str) -> str:
    program = shutil.which("rabbitmqctl")
    if program is None:
        pytest.fail("rabbitmqctl is not installed: install rabbitmq-server (.ci/run does).")
    result = subprocess.run([program, *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}")
    return result.stdout


@pytest.fixture(scope="module")
def broker_url():
    """The URL of a new vhost on the local RabbitMQ, deleted (with every queue in it) after the module."""
    if not port_open(PORT, HOST):
        pytest.fail(f"RabbitMQ at {HOST}:{PORT} is not reachable: start it (rabbitmq-server -detached).")
    vhost = f"sbm-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{HOST}:{PORT}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def on_rabbitmq(broker_url, transactional_db):
    """This process queues its tasks on the module's RabbitMQ vhost, emptied after the test."""
    with using_broker(broker_url):
        yield broker_url
        celery_app.control.purge()


@pytest.fixture(scope="module")
def peer():
    """The message sender (POST /outbound/) and a job target (/job), recording every request."""
    recording = RecordingPeer(status=201).start()
    yield recording
    recording.stop()


@pytest.fixture
def sink(peer, settings):
    """The peer, fresh, as the message sender and an allowed job target."""
    peer.reset()
    settings.MESSAGE_SENDER_URL = peer.url
    settings.IDENTITY_STORE_URL = None
    settings.DRY_RUN_MESSAGESETS = []
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return peer


def _subscriptions_on_one_schedule() -> tuple[int, set[str]]:
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscriptions = [make_subscription(messageset, identity=f"mother-{n}") for n in range(SUBSCRIPTIONS)]
    return messageset.default_schedule_id, {str(subscription.pk) for subscription in subscriptions}


def _first_message_keys(subscription_ids: set[str]) -> set[str]:
    return {f"{subscription_id}:1" for subscription_id in subscription_ids}


def _send_finished(schedule_id: int) -> bool:
    return SendRun.objects.filter(schedule_id=schedule_id, finished_at__isnull=False).exists()


def _positions(subscription_ids: set[str]) -> Counter:
    return Counter(Subscription.objects.filter(pk__in=subscription_ids).values_list("next_sequence_number", flat=True))


def test_the_settings_give_rabbitmq_publisher_confirms_and_no_redis_options():
    assert broker_is_rabbitmq("amqp://guest:guest@rabbit:5672/sbm")
    assert broker_is_rabbitmq("amqps://guest:guest@rabbit:5671/sbm")
    assert not broker_is_rabbitmq("redis://127.0.0.1:6379/0")
    assert broker_transport_options("amqp://guest:guest@rabbit:5672/sbm") == {"confirm_publish": True}
    assert broker_transport_options("redis://127.0.0.1:6379/0") == {}


def test_a_schedule_send_reaches_the_sender_through_rabbitmq_and_advances_each_subscription_once(on_rabbitmq, sink):
    schedule_id, subscription_ids = _subscriptions_on_one_schedule()

    with running_worker():
        tasks.send_schedule.delay(schedule_id)
        wait_until(lambda: _send_finished(schedule_id), what="the schedule send to finish", timeout=30)

    assert sink.keys("/outbound/") == Counter(_first_message_keys(subscription_ids))
    assert _positions(subscription_ids) == Counter({2: SUBSCRIPTIONS})


def test_a_due_job_is_delivered_through_rabbitmq(on_rabbitmq, sink, make_token):
    token, _ = make_token("jobs:readwrite")
    job = job_services.job_create(user=token.user, uri=f"{sink.url}/job")

    with running_worker():
        assert dispatch_once() == 1
        wait_until(
            lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED, what="the job to succeed", timeout=30
        )

    [received] = sink.received("/job")
    assert received.method == "GET"
    assert received.key == str(job.delivery_id)


def test_queued_tasks_wait_durable_and_persistent_and_the_metrics_count_them(on_rabbitmq, make_token, api, admin_user):
    schedule_id, _ = _subscriptions_on_one_schedule()
    _, raw = make_token("messaging:admin", user=admin_user)

    tasks.send_schedule.delay(schedule_id)

    assert "sbm_send_queue_length 1.0" in api(raw).get("/metrics").content.decode().splitlines()
    vhost = on_rabbitmq.rsplit("/", 1)[1]
    listed = json.loads(_rabbitmqctl("list_queues", "-p", vhost, "name", "durable", "--formatter", "json", "-q"))
    assert {"name": "celery", "durable": True} in listed
    with celery_app.connection_for_read() as connection:
        message = connection.default_channel.basic_get("celery", no_ack=True)
    assert message.properties["delivery_mode"] == 2  # persistent: it outlives a broker restart


def _batch_lockable(schedule_id: int) -> bool:
    """Whether PostgreSQL has let go of the dead worker's lock on the batch it was sending."""
    with transaction.atomic():
        return SendBatch.objects.select_for_update(skip_locked=True).filter(run__schedule_id=schedule_id).exists()


def test_a_task_of_a_killed_worker_is_redelivered_and_finished_by_another_once(on_rabbitmq, sink, tmp_path):
    """The worker dies (SIGKILL, with its pool) while its send batch waits on the sender: RabbitMQ
    puts the unacked task back at once, and a second worker sends the batch, each subscription once."""
    schedule_id, subscription_ids = _subscriptions_on_one_schedule()
    sink.behave("/outbound/", hang=True)
    environment = child_environment(
        CELERY_BROKER_URL=on_rabbitmq,
        MESSAGE_SENDER_URL=sink.url,
        SEND_CONCURRENCY="1",
        SEND_TIMEOUT="30",
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
    )
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency=1", "--loglevel=INFO"]
    first = Process("worker", command, env=environment, log=tmp_path / "worker.log").start()
    try:
        tasks.send_schedule.delay(schedule_id)
        wait_until(lambda: sink.holding("/outbound/") == 1, what="the first worker to be sending", timeout=60)
    finally:
        first.kill()

    wait_until(lambda: _broker_queue_length() == 1.0, what="RabbitMQ to requeue the unacked task", timeout=30)
    wait_until(lambda: _batch_lockable(schedule_id), what="PostgreSQL to end the dead worker's transaction", timeout=30)
    assert _positions(subscription_ids) == Counter({1: SUBSCRIPTIONS})
    sink.unhang("/outbound/", status=201)

    with running_worker():
        wait_until(lambda: _send_finished(schedule_id), what="the second worker to finish the send", timeout=30)

    keys = sink.keys("/outbound/")
    assert set(keys) == _first_message_keys(subscription_ids)
    assert sum(keys.values()) == SUBSCRIPTIONS + 1  # the message in flight at the kill, again under its key
    assert _positions(subscription_ids) == Counter({2: SUBSCRIPTIONS})
    assert _broker_queue_length() == 0.0
