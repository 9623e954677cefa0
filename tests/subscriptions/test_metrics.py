"""`/api/metrics/` as the reference, and the Prometheus exposition at `/metrics` for operators."""

import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug import Response

from config.celery import app as celery_app
from subscriptions import tasks
from subscriptions.models import EstimatedSend

from .factories import make_messages, make_messageset, make_schedule, make_subscription

pytestmark = pytest.mark.django_db


def _samples(body: bytes) -> dict:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


@pytest.fixture
def operator(make_token, api, admin_user):
    _, raw = make_token("messaging:admin", user=admin_user)
    return api(raw)


def test_get_metrics_lists_the_metrics_available(reader):
    response = reader.get("/api/metrics/")
    assert response.status_code == 200
    available = response.json()["metrics_available"]
    assert "sbm_subscription_sends_total" in available
    assert "sbm_send_batches_pending" in available


def test_post_metrics_starts_the_scheduled_metrics(writer, run_queued):
    make_subscription(make_messageset(schedule=make_schedule(day_of_week="*")))
    with run_queued():
        response = writer.post("/api/metrics/")
    assert response.status_code == 201
    assert response.json() == {"scheduled_metrics_initiated": True}
    assert EstimatedSend.objects.get().estimate_subscriptions == 1


def test_run_send_estimate_records_todays_estimates(writer, run_queued):
    every_day = make_schedule(minute="0", hour="8", day_of_week="*")
    make_subscription(make_messageset(), schedule=every_day)
    with run_queued():
        response = writer.post("/api/v1/runsendestimate")
    assert response.status_code == 202
    assert response.json()["accepted"] is True
    assert EstimatedSend.objects.get().estimate_subscriptions == 1


def test_the_prometheus_exposition_needs_a_messaging_admin_token(api, writer):
    assert api().get("/metrics").status_code == 401
    assert writer.get("/metrics").status_code == 403


def test_the_queue_length_counts_the_tasks_waiting_in_the_broker(operator):
    celery_app.control.purge()
    for _ in range(2):
        tasks.estimate_daily_sends.delay()
    try:
        samples = _samples(operator.get("/metrics").content)
    finally:
        celery_app.control.purge()
    assert samples[("sbm_send_queue_length", ())] == 2.0


def test_an_allowed_network_may_scrape_without_a_token(api, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    response = api().get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert api().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401


def test_sends_failures_retries_and_durations_are_counted(sender, fire, operator):
    messageset = make_messageset()
    make_messages(messageset, 3)
    make_subscription(messageset, identity="retried")
    make_subscription(messageset, identity="refused")
    make_subscription(messageset, identity="missing", next_sequence_number=9)
    attempts = {"retried": 0}

    def handler(request):
        if b'"refused"' in request.get_data():
            return Response("no", status=400)
        attempts["retried"] += 1
        return Response("busy", status=503) if attempts["retried"] == 1 else Response('{"id": null}', status=201)

    sender.answer(handler)
    fire(messageset.default_schedule)

    response = operator.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = _samples(response.content)
    assert samples[("sbm_subscription_sends_total", (("outcome", "sent"),))] == 1
    assert samples[("sbm_subscription_sends_total", (("outcome", "failed"),))] == 1
    assert samples[("sbm_subscription_sends_total", (("outcome", "skipped"),))] == 1
    assert samples[("sbm_send_failures_total", (("kind", "http_4xx"),))] == 1
    assert samples[("sbm_send_failures_total", (("kind", "missing_message"),))] == 1
    assert samples[("sbm_send_retries_total", ())] == 1
    assert samples[("sbm_peer_request_duration_seconds_count", ())] == 3
    assert samples[("sbm_send_batch_duration_seconds_count", ())] == 1
    assert samples[("sbm_schedule_send_duration_seconds_count", ())] == 1
    assert samples[("sbm_schedule_sends_started_total", ())] == 1
    assert samples[("sbm_send_batches_pending", ())] == 0
    assert samples[("sbm_subscriptions_ready", ())] == 3
