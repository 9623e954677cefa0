"""The relay is safe with several scheduler processes: a webhook another relay holds is skipped."""

import threading

from django.db import connection, transaction

from jobs.models import Job
from webhooks.models import TopicWebhook
from webhooks.relay import relay_once

from .conftest import URL, publish


def test_a_webhook_claimed_by_another_relay_is_skipped_not_handed_on_twice(transactional_db, api, owner, news):
    body = {"topic": "sports", "destination": "https://example.org/hook"}
    assert api(owner.raw).put(URL + "scores", body, format="json").status_code == 201
    publish(news, "sports", b"one")
    publish(news, "sports", b"two")
    locked, release = threading.Event(), threading.Event()

    def other_relay() -> None:
        try:
            with transaction.atomic():
                TopicWebhook.objects.select_for_update().get()
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=other_relay)
    holder.start()
    try:
        assert locked.wait(30)
        assert relay_once() == 0
        assert not Job.objects.exists()
    finally:
        release.set()
        holder.join(30)
    assert relay_once() == 1
    assert relay_once() == 0  # its delivery is in flight: the next message waits
    assert Job.objects.count() == 1
