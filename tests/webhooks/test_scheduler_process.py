"""End to end: the relay in a real scheduler process, a real Celery worker, a receiver that fails then succeeds."""

import json
import sys

from harness.processes import Process
from harness.waiting import wait_until
from tests.jobs.helpers import celery_worker
from tests.processes import child_environment

from .conftest import URL, publish, received, verifies


def test_the_scheduler_process_relays_messages_in_order_through_a_worker(
    transactional_db, api, owner, news, receiver, settings, tmp_path
):
    settings.JOBS_RETRY_SCHEDULE = [1]  # the worker (a thread of this process) schedules the retry 1 s on
    receiver.expect_oneshot_request("/hook").respond_with_data("down", status=503)
    receiver.expect_request("/hook").respond_with_data("ok")
    body = {"topic": "sports", "destination": receiver.url_for("/hook")}
    secret = api(owner.raw).put(URL + "scores", body, format="json").json()["secret"]
    environment = child_environment(
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
        JOBS_SIGNING_KEY=settings.JOBS_SIGNING_KEY,
        JOBS_DISPATCH_INTERVAL_MS="20",
        WEBHOOKS_RELAY_INTERVAL_MS="20",
    )
    command = [sys.executable, "manage.py", "runscheduler"]
    with celery_worker():
        scheduler = Process("scheduler", command, env=environment, log=tmp_path / "scheduler.log").start()
        try:
            for text in (b"one", b"two", b"three"):
                publish(news, "sports", text)
            wait_until(lambda: len(received(receiver)) >= 4, what="every message delivered", timeout=60, every=0.05)
        finally:
            scheduler.stop(grace=30)
    assert scheduler.returncode == 0
    requests = received(receiver)
    assert [json.loads(r.get_data())["text"] for r in requests] == ["one", "one", "two", "three"]
    assert all(verifies(secret, request) for request in requests)
    assert "Webhook relay stopped." in scheduler.output()
