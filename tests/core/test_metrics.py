"""The figures of every face (core/metrics.py): counted in memory, added to Redis, read by any scrape;
and the Grafana dashboard in deploy/ queries nothing that /metrics does not show after real traffic."""

import json
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync
from prometheus_client.parser import text_string_to_metric_families
from werkzeug import Request, Response

from cache_api import services as cache_services
from config.asgi import application
from core import metrics
from jobs import clock as job_clock
from jobs import services as job_services
from jobs.dispatcher import dispatch_once
from jobs.tasks import prune_finished_jobs
from subscriptions import services as subscription_services
from tests.subscriptions.factories import MONDAY_8AM, make_messages, make_messageset, make_subscription

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
METRIC_NAME = re.compile(r"\b((?:http|cache|topics|jobs|sbm)_[a-z_]+)\b(?!\s*\()")


@pytest.fixture(autouse=True)
def _counting_from_nothing():
    """This process's counts of earlier tests are dropped (Redis was emptied for the test)."""
    metrics.buffer.take()
    yield


@pytest.fixture
def scopes() -> tuple[str, ...]:
    """The owner schedules jobs."""
    return ("jobs:readwrite",)


@pytest.fixture
def scrape(api, settings):
    """scrape() -> {(sample name, labels): value} of GET /metrics, from an allowed network."""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    def read() -> dict:
        response = api().get("/metrics", REMOTE_ADDR="127.0.0.1")
        assert response.status_code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
        }

    return read


def asgi(method: str, path: str, **kwargs) -> httpx.Response:
    """A request to the whole ASGI application, as a client on the network would send it."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, path, **kwargs)

    return async_to_sync(send)()


def test_counts_of_every_process_add_up_in_redis(db, scrape):
    metrics.count("cache_hits", 2)
    metrics.buffer.flush()
    metrics.count("cache_hits")  # still in this process's memory: the scrape flushes it first
    assert scrape()[("cache_hits_total", ())] == 3.0


def test_a_histogram_counts_each_value_in_its_bucket_and_below(db, scrape):
    metrics.observe("jobs_lateness_seconds", 0.04)
    metrics.observe("jobs_lateness_seconds", 7.0)
    samples = scrape()
    assert samples[("jobs_lateness_seconds_bucket", (("le", "0.025"),))] == 0.0
    assert samples[("jobs_lateness_seconds_bucket", (("le", "0.05"),))] == 1.0
    assert samples[("jobs_lateness_seconds_bucket", (("le", "10.0"),))] == 2.0
    assert samples[("jobs_lateness_seconds_bucket", (("le", "+Inf"),))] == 2.0
    assert samples[("jobs_lateness_seconds_count", ())] == 2.0
    assert samples[("jobs_lateness_seconds_sum", ())] == pytest.approx(7.04)


def test_a_gauge_sums_the_live_processes_and_forgets_the_gone(db, scrape, settings):
    settings.METRICS_FLUSH_SECONDS = 1
    client = metrics.get_redis()
    live = {"at": time.time(), "values": [["topics_subscribers", ["stream"], 5]]}
    gone = {"at": time.time() - 60, "values": [["topics_subscribers", ["stream"], 100]]}
    client.hset(metrics.LIVE_KEY, mapping={"other-host:1": json.dumps(live), "other-host:2": json.dumps(gone)})
    metrics.gauge_add("topics_subscribers", 2, "stream")
    metrics.gauge_add("topics_subscribers", -1, "stream")
    try:
        assert scrape()[("topics_subscribers", (("mode", "stream"),))] == 6.0
        assert client.hexists(metrics.LIVE_KEY, "other-host:2") is False
    finally:
        metrics.gauge_add("topics_subscribers", -1, "stream")  # the gauge is this process's: leave it as found


def test_an_unknown_metric_is_refused():
    with pytest.raises(KeyError):
        metrics.count("cache_hit")


def test_a_made_up_method_is_counted_as_other(db, scrape):
    metrics.request_observed("cache", "other", "BREW", 405, 0.001)
    samples = scrape()
    labels = (("face", "cache"), ("method", "other"), ("operation", "other"), ("status", "405"))
    assert samples[("http_requests_total", labels)] == 1.0


def test_django_counts_requests_it_answers_under_asgi_too(transactional_db, scrape):
    assert asgi("GET", "/no-such-page").status_code == 404
    samples = scrape()
    labels = (("face", "other"), ("method", "GET"), ("operation", "unmatched"), ("status", "404"))
    assert samples[("http_requests_total", labels)] == 1.0
    assert samples[("http_request_duration_seconds_count", (("face", "other"), ("operation", "unmatched")))] == 1.0


# --- The dashboard, after real traffic to each face ----------------------------------


def cache_and_topics_traffic(raw: str) -> None:
    auth = {"Authorization": raw}
    assert asgi("PUT", "/cache/metrics?key=k&ttl_seconds=60", content=b"v" * 10, headers=auth).status_code == 204
    assert asgi("GET", "/cache/metrics?key=k", headers=auth).status_code == 200
    assert asgi("GET", "/cache/metrics?key=missing", headers=auth).status_code == 404
    published = asgi("POST", "/topics/metrics/room", content=b"hello", headers={**auth, "Content-Type": "text/plain"})
    assert published.status_code == 204
    polled = asgi("GET", "/topics/metrics/room?sequence_number=1", headers=auth)
    assert [entry["item"]["value"] for entry in polled.json()["items"]] == [{"text": "hello"}]


def jobs_traffic(owner, target, capture, settings) -> None:
    """One job delivered, one refused for good (a dead letter), through the dispatcher and an eager worker."""
    target.expect_request("/hook").respond_with_data("ok")
    manual = job_clock.ManualClock(job_clock.now())
    with job_clock.using(manual):
        job_services.job_create(user=owner, uri=target.url_for("/hook"), at=manual.now())
        refused = job_services.job_create(user=owner, uri=target.url_for("/elsewhere"), at=manual.now())
        refused.uri = "http://127.0.0.2:9/hook"  # loopback, which only 127.0.0.1 is allowed to reach
        refused.save(update_fields=["uri"])
        settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        manual.advance(seconds=1)
        with capture(execute=True):
            assert dispatch_once() == 2


def retention_traffic() -> None:
    """Eight days on, retention deletes the delivered job and its attempt (the periodic task, eagerly)."""
    with job_clock.using(job_clock.ManualClock(job_clock.now() + timedelta(days=8))):
        prune_finished_jobs.delay()


def message_sender(request: Request) -> Response:
    """Accepts every message but those to `refused-by-the-sender`."""
    if json.loads(request.get_data())["to_identity"] == "refused-by-the-sender":
        return Response('{"to_addr": ["refused"]}', status=400, content_type="application/json")
    return Response(json.dumps({"id": str(uuid.uuid4())}), status=201, content_type="application/json")


def messaging_traffic(sender_url: str, capture, settings) -> None:
    settings.MESSAGE_SENDER_URL = sender_url
    messageset = make_messageset("metrics")
    make_messages(messageset, 2)
    make_subscription(messageset, identity="mother-1")
    make_subscription(messageset, identity="refused-by-the-sender")
    with capture(execute=True):
        subscription_services.schedule_send(schedule_id=messageset.default_schedule.pk, at=MONDAY_8AM)


def test_every_metric_the_dashboard_queries_is_on_metrics_after_traffic_to_each_face(
    api, make_token, owner, http_server, scrape, settings, eager_celery, django_capture_on_commit_callbacks
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.MESSAGE_SENDER_TOKEN = "sender-token"
    http_server.reset()
    http_server.expect_request("/outbound/", method="POST").respond_with_handler(message_sender)
    cache_services.cache_create(name="metrics")
    _, raw = make_token()

    cache_and_topics_traffic(raw)
    jobs_traffic(owner.user, http_server, django_capture_on_commit_callbacks, settings)
    retention_traffic()
    messaging_traffic(http_server.url_for("").rstrip("/"), django_capture_on_commit_callbacks, settings)
    _, jobs_key = owner
    assert api().get(f"/jobs.json?apikey={jobs_key}").status_code == 200  # Django's faces are counted too

    samples = scrape()
    names = {name for name, _ in samples}
    queried = {
        name
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel.get("targets", [])
        for name in METRIC_NAME.findall(target["expr"])
    }
    assert len(queried) > 20
    assert sorted(queried - names) == []

    def value(name: str, **labels: str) -> float:
        return sum(v for (n, found), v in samples.items() if n == name and set(labels.items()) <= set(found))

    assert value("cache_hits_total") == 1 and value("cache_misses_total") == 1
    assert value("cache_bytes_total", op="set") == 10 and value("cache_bytes_total", op="get") == 10
    assert value("topics_publishes_total") == 1 and value("topics_deliveries_total", mode="long_poll") == 1
    assert value("topics_subscribers", mode="long_poll") == 0
    assert value("jobs_claimed_total") == 2
    assert value("jobs_delivered_total", outcome="succeeded", kind="request") == 1
    assert value("jobs_delivered_total", outcome="refused", kind="request") == 1
    assert value("jobs_dead_letters_total", kind="request") == 1
    assert value("jobs_lateness_seconds_count") == 2
    assert value("sbm_jobs_pruned_total", what="jobs") == 1 and value("sbm_jobs_pruned_total", what="attempts") == 1
    assert value("sbm_subscription_sends_total", outcome="sent") == 1
    assert value("sbm_send_failures_total", kind="http_4xx") == 1
    assert value("http_requests_total", face="cache", operation="get", status="404") == 1
    assert value("http_requests_total", face="topics", operation="publish", status="204") == 1
    assert value("http_requests_total", face="jobs", method="GET", status="200") == 1
    assert value("http_request_duration_seconds_count", face="cache", operation="set") == 1


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert all(panel["datasource"]["uid"] == "${datasource}" and panel["targets"] for panel in panels)
    assert dashboard["time"]["from"].startswith("now-")
