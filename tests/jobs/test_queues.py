"""Job queues: the /api/v1/job-queues/ endpoints, `job[queue]` in every parameter form, and the flow
control the dispatcher applies (parallelism, rate by the clock, pause) with real workers and targets."""

import json
import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from werkzeug import Response

from jobs import selectors, services, values
from jobs.dispatcher import dispatch_once, start_dispatcher_thread, turn
from jobs.errors import JobParameterError
from jobs.models import AttemptOutcome, Job, JobQueue, JobState
from jobs.services import delivery, dispatch
from jobs.services.delivery import RequestResult, record_results
from jobs.services.recurring import recurring_next_run

from .helpers import celery_worker, make_job, plan_without_statistics, requests_to, state_of, wait_until

QUEUES = "/api/v1/job-queues/"


@pytest.fixture
def client(api, owner):
    return api(owner.raw)


def make_queue(user, name: str = "emails", **settings) -> JobQueue:
    queue, _ = services.queue_set(user=user, name=name, **settings)
    return queue


def claimed_ids(now, limit: int = 100) -> list[uuid.UUID]:
    return [job_id for claim in services.jobs_claim_due(now=now, limit=limit) for job_id in claim.ids]


# --- the API ------------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_a_queue_with_put_and_changes_only_the_settings_given(client):
    created = client.put(QUEUES + "emails", {"parallelism": 2, "rate_per_second": 0.5}, format="json")
    assert created.status_code == 201, created.content
    assert created.json() == {
        **created.json(),
        "name": "emails",
        "parallelism": 2,
        "rate_per_second": 0.5,
        "burst": 1.0,
        "paused": False,
        "depth": 0,
        "in_flight": 0,
        "oldest_due_lateness_ms": None,
    }

    changed = client.put(QUEUES + "emails", {"paused": True}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["parallelism"], changed.json()["rate_per_second"], changed.json()["paused"]) == (
        2,
        0.5,
        True,
    )

    unbounded = client.put(QUEUES + "emails", {"parallelism": None, "rate_per_second": None}, format="json")
    assert (unbounded.json()["parallelism"], unbounded.json()["rate_per_second"], unbounded.json()["burst"]) == (
        None,
        None,
        None,
    )


@pytest.mark.django_db
def test_a_new_queue_is_unbounded_and_not_paused(client):
    answer = client.put(QUEUES + "plain", format="json")
    assert answer.status_code == 201, answer.content
    assert (answer.json()["parallelism"], answer.json()["rate_per_second"], answer.json()["paused"]) == (
        None,
        None,
        False,
    )


def test_it_lists_and_shows_each_queue_with_its_depth_jobs_in_flight_and_lateness(client, owner, clock):
    user, _ = owner
    make_queue(user, "billing")
    emails = make_queue(user, "emails")
    oldest = make_job(user, "https://example.org/1", at=clock.now() - timedelta(seconds=3), queue="emails")
    make_job(user, "https://example.org/2", at=clock.now() - timedelta(seconds=1), queue="emails")
    make_job(user, "https://example.org/3", at=clock.now() + timedelta(hours=1), queue="emails")
    make_job(user, "https://example.org/4", at=clock.now() - timedelta(seconds=9))  # no queue
    assert claimed_ids(clock.now(), limit=1) == [oldest.pk]
    clock.advance(seconds=0.25)

    listed = client.get(QUEUES)
    assert listed.status_code == 200
    assert [queue["name"] for queue in listed.json()] == ["billing", "emails"]
    billing, shown = listed.json()
    assert (billing["depth"], billing["in_flight"], billing["oldest_due_lateness_ms"]) == (0, 0, None)
    assert (shown["depth"], shown["in_flight"], shown["oldest_due_lateness_ms"]) == (2, 1, 1250)
    assert client.get(QUEUES + "emails").json() == shown
    assert JobQueue.objects.get(pk=emails.pk).name == "emails"


@pytest.mark.django_db
def test_listing_queues_costs_the_same_few_queries_however_many(client, owner, django_assert_num_queries):
    user, _ = owner
    for n in range(5):
        make_queue(user, f"q{n}")
        make_job(user, "https://example.org/", queue=f"q{n}")
    with django_assert_num_queries(3):  # the token (read, its use noted), the queues with their counts
        assert len(client.get(QUEUES).json()) == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 65, "Is 65 characters long"),
        ("with space", "Is not a queue name"),
        ("-leading", "Is not a queue name"),
        ("ünïcode", "Is not a queue name"),
    ],
)
def test_a_queue_name_is_short_and_slug_like(client, name, message):
    answer = client.put(QUEUES + name, {}, format="json")
    assert answer.status_code == 400
    assert answer.json()["name"][0].startswith(message)
    assert "letters, digits, '-', '_' and '.'" in answer.json()["name"][0]
    assert not JobQueue.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"parallelism": 0}, "parallelism", "Ensure this value is greater than or equal to 1."),
        ({"parallelism": "two"}, "parallelism", "A valid integer is required."),
        ({"rate_per_second": 0}, "rate_per_second", "Must be above 0; null for no limit"),
        ({"rate_per_second": -1}, "rate_per_second", "Must be above 0; null for no limit"),
        ({"rate_per_second": "fast"}, "rate_per_second", "A valid number is required."),
        ({"paused": "maybe"}, "paused", "Must be a valid boolean."),
        ({"parallelizm": 2}, "parallelizm", "Unknown queue setting; a queue takes parallelism, rate_per_second"),
    ],
)
def test_bad_settings_get_a_400_naming_the_field(client, body, field, message):
    answer = client.put(QUEUES + "emails", body, format="json")
    assert answer.status_code == 400
    assert answer.json()[field][0].startswith(message)
    assert not JobQueue.objects.exists()


@pytest.mark.django_db
def test_an_owner_has_at_most_jobs_max_queues(client, settings):
    settings.JOBS_MAX_QUEUES = 2
    assert client.put(QUEUES + "a", {}, format="json").status_code == 201
    assert client.put(QUEUES + "b", {}, format="json").status_code == 201
    answer = client.put(QUEUES + "c", {}, format="json")
    assert answer.status_code == 400
    assert "JOBS_MAX_QUEUES" in answer.json()["name"][0]
    assert client.put(QUEUES + "a", {"paused": True}, format="json").status_code == 200  # changing one is fine


@pytest.mark.django_db
def test_one_owner_never_sees_or_uses_anothers_queue(api, owner, outsider, jobs_api):
    user, _ = owner
    make_queue(user, "emails", parallelism=2)
    make_job(user, "https://example.org/", queue="emails")
    theirs = api(outsider.raw)

    assert theirs.get(QUEUES).json() == []
    assert theirs.get(QUEUES + "emails").status_code == 404
    assert "create it with PUT /api/v1/job-queues/emails" in theirs.get(QUEUES + "emails").json()["detail"]
    assert theirs.delete(QUEUES + "emails").status_code == 404
    assert theirs.post(QUEUES + "emails/purge").status_code == 404
    refused = jobs_api.post(
        "/jobs.json", {"job[uri]": "https://example.org/", "job[queue]": "emails", "apikey": outsider.raw}
    )
    assert refused.status_code == 400
    assert "There is no queue named 'emails'" in refused.json()["error"]["queue"]

    assert theirs.put(QUEUES + "emails", {"parallelism": 9}, format="json").status_code == 201  # their own
    assert JobQueue.objects.get(user=user, name="emails").parallelism == 2
    assert Job.objects.get().queue.user == user


@pytest.mark.django_db
def test_reads_need_the_jobs_read_scope_and_changes_the_write_scope(api, owner, member):
    make_queue(owner.user, "emails")
    reader = api(member.raw)
    assert reader.get(QUEUES).status_code == 200
    assert reader.get(QUEUES + "emails").status_code == 200
    for answer in (
        reader.put(QUEUES + "emails", {"paused": True}, format="json"),
        reader.delete(QUEUES + "emails"),
        reader.post(QUEUES + "emails/purge"),
    ):
        assert answer.status_code == 403
        assert "jobs" in answer.json()["detail"]
    assert api().get(QUEUES).status_code == 401
    assert api("not-a-token").get(QUEUES + "emails").status_code == 401
    assert JobQueue.objects.get().paused is False


@pytest.mark.django_db
def test_a_token_of_another_face_may_not_touch_queues(api, make_token):
    _, raw = make_token("messaging:write")
    assert api(raw).get(QUEUES).status_code == 403
    assert api(raw).put(QUEUES + "emails", {}, format="json").status_code == 403


def test_purge_cancels_the_scheduled_jobs_and_leaves_those_in_flight(client, owner, clock):
    user, _ = owner
    make_queue(user, "emails")
    jobs = [
        make_job(user, f"https://example.org/{n}", at=clock.now() - timedelta(seconds=5 - n), queue="emails")
        for n in range(3)
    ]
    later = make_job(user, "https://example.org/later", at=clock.now() + timedelta(days=1), queue="emails")
    other = make_job(user, "https://example.org/other", at=clock.now() + timedelta(days=1))
    assert claimed_ids(clock.now(), limit=1) == [jobs[0].pk]

    answer = client.post(QUEUES + "emails/purge")
    assert answer.status_code == 200
    assert answer.json() == {"cancelled": 3}
    states = [state_of(job) for job in (*jobs, later, other)]
    assert states == [JobState.RUNNING, JobState.CANCELLED, JobState.CANCELLED, JobState.CANCELLED, JobState.SCHEDULED]
    assert Job.objects.get(pk=later.pk).finished_at == clock.now()


def test_a_queue_is_removed_only_once_it_holds_no_scheduled_or_running_job(client, owner, clock):
    user, _ = owner
    make_queue(user, "emails")
    running, waiting = (make_job(user, f"https://example.org/{n}", queue="emails") for n in range(2))
    services.jobs_claim_due(now=clock.now(), limit=1)

    refused = client.delete(QUEUES + "emails")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "Queue 'emails' still holds 2 scheduled or running job(s): purge it "
        "(POST /api/v1/job-queues/emails/purge) and let its running jobs finish first."
    )
    client.post(QUEUES + "emails/purge")
    assert client.delete(QUEUES + "emails").status_code == 409  # one is still running

    Job.objects.filter(state=JobState.RUNNING).update(state=JobState.SUCCEEDED, next_attempt_at=None, lease=None)
    assert client.delete(QUEUES + "emails").status_code == 204
    assert client.get(QUEUES + "emails").status_code == 404
    assert list(Job.objects.filter(pk__in=[running.pk, waiting.pk]).values_list("queue", flat=True)) == [None, None]


# --- job[queue] ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("form", ["query", "form", "json", "json_single_quotes"])
def test_a_job_names_its_queue_in_every_parameter_form(owner, jobs_api, form):
    user, key = owner
    make_queue(user, "emails")
    uri = "https://example.org/hook"
    if form == "query":
        answer = jobs_api.post("/jobs.json", QUERY_STRING=f"job[uri]={uri}&job[queue]=emails&apikey={key}")
    elif form == "form":
        answer = jobs_api.post("/jobs.json", {"job[uri]": uri, "job[queue]": "emails", "apikey": key})
    elif form == "json":
        body = json.dumps({"job": {"uri": uri, "queue": "emails"}, "apikey": key})
        answer = jobs_api.generic("POST", "/jobs.json", body, content_type="application/json")
    else:
        body = f"{{'job': {{'uri': '{uri}', 'queue': 'emails'}}, 'apikey': '{key}'}}"
        answer = jobs_api.generic("POST", "/jobs.json", body, content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["success"]["job"]["queue"] == "emails"
    assert Job.objects.get().queue.name == "emails"


@pytest.mark.django_db
def test_a_job_without_a_queue_shows_none(owner, jobs_api):
    _, key = owner
    answer = jobs_api.post("/jobs.json", {"job[uri]": "https://example.org/", "apikey": key})
    assert answer.json()["success"]["job"]["queue"] is None
    assert Job.objects.get().queue is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("queue", "message"),
    [
        ("nope", "There is no queue named 'nope': create it first with PUT /api/v1/job-queues/nope."),
        ("bad name", "Is not a queue name: 'bad name'."),
        ("q" * 65, "Is 65 characters long."),
    ],
)
def test_a_job_naming_a_queue_that_does_not_exist_is_refused(owner, jobs_api, queue, message):
    _, key = owner
    answer = jobs_api.post("/jobs.json", {"job[uri]": "https://example.org/", "job[queue]": queue, "apikey": key})
    assert answer.status_code == 400
    assert answer.json()["error"]["queue"].startswith(message)
    assert not Job.objects.exists()


def test_a_scheduled_jobs_queue_changes_on_update_and_an_empty_one_removes_it(owner, jobs_api, clock):
    user, key = owner
    make_queue(user, "emails")
    make_queue(user, "billing")
    job = make_job(user, "https://example.org/", queue="emails")

    moved = jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[queue]=billing")
    assert moved.status_code == 200, moved.content
    assert moved.json()["success"]["job"]["queue"] == "billing"
    body = json.dumps({"job": {"queue": None}, "apikey": key})
    assert (
        jobs_api.put(f"/jobs/{job.pk}.json", body, content_type="application/json").json()["success"]["job"]["queue"]
        is None
    )
    back = jobs_api.post(f"/jobs/{job.pk}.json", {"_method": "PUT", "job[queue]": "emails", "apikey": key})
    assert back.json()["success"]["job"]["queue"] == "emails"
    gone = jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[queue]=")
    assert gone.json()["success"]["job"]["queue"] is None
    unknown = jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[queue]=nope")
    assert unknown.status_code == 400
    assert Job.objects.get().queue is None


def test_a_running_jobs_queue_does_not_change(owner, jobs_api, clock):
    user, key = owner
    make_queue(user, "emails")
    make_queue(user, "billing")
    job = make_job(user, "https://example.org/", queue="emails")
    services.jobs_claim_due(now=clock.now(), limit=1)

    answer = jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[queue]=billing")
    assert answer.status_code == 409
    assert "its queue can be changed once its attempt is recorded" in answer.json()["error"]["queue"]
    assert (state_of(job), Job.objects.get().queue.name) == (JobState.RUNNING, "emails")
    assert jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[queue]=emails").status_code == 200  # the same queue


@pytest.mark.django_db
def test_the_schema_describes_the_queue_endpoints_and_job_queue(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert set(paths["/api/v1/job-queues/"]) >= {"get"}
    assert set(paths["/api/v1/job-queues/{name}/"]) >= {"get", "put", "delete"}
    assert set(paths["/api/v1/job-queues/{name}/purge/"]) >= {"post"}
    assert set(paths["/api/v1/job-queues/{name}/"]["put"]["responses"]) >= {"200", "201", "400", "403"}
    assert "409" in paths["/api/v1/job-queues/{name}/"]["delete"]["responses"]
    components = schema["components"]["schemas"]
    assert set(components["JobQueueInputRequest"]["properties"]) == {"parallelism", "rate_per_second", "paused"}
    assert {"depth", "in_flight", "oldest_due_lateness_ms", "burst"} <= set(components["JobQueue"]["properties"])
    assert "queue" in components["Job"]["properties"]
    assert "queue" in components["JobInputRequest"]["properties"]


# --- flow control -------------------------------------------------------------


class Holding:
    """`/held/<queue>` on the target: counts the requests being answered at once, per path, and holds each
    until the test lets them go."""

    def __init__(self, target, *paths: str):
        self.let_go = threading.Event()
        self.lock = threading.Lock()
        self.current: dict[str, int] = dict.fromkeys(paths, 0)
        self.most: dict[str, int] = dict.fromkeys(paths, 0)
        self.arrived: dict[str, int] = dict.fromkeys(paths, 0)
        for path in paths:
            target.expect_request(path).respond_with_handler(self.answer)

    def answer(self, request):
        with self.lock:
            self.current[request.path] += 1
            self.arrived[request.path] += 1
            self.most[request.path] = max(self.most[request.path], self.current[request.path])
        self.let_go.wait(20)
        with self.lock:
            self.current[request.path] -= 1
        return Response("ok")


@pytest.fixture
def holding(target):
    holds = []

    def hold(*paths):
        holds.append(Holding(target, *paths))
        return holds[-1]

    yield hold
    for hold in holds:
        hold.let_go.set()


def test_a_queue_never_has_more_jobs_at_its_target_than_its_parallelism(owner, target, holding, worker, clock):
    user, _ = owner
    make_queue(user, "two", parallelism=2)
    held = holding("/two", "/free")
    queued = [make_job(user, target.url_for("/two"), queue="two", timeout=30) for _ in range(6)]
    free = [make_job(user, target.url_for("/free"), timeout=30) for _ in range(3)]

    assert dispatch_once() == 5  # two of the queue's, every unqueued one
    wait_until(lambda: held.arrived == {"/two": 2, "/free": 3}, what="the first jobs to reach the target")
    assert dispatch_once() == 0  # the queue is full
    assert held.arrived["/two"] == 2

    held.let_go.set()
    every = [*queued, *free]
    wait_until(
        lambda: dispatch_once() >= 0 and all(state_of(job) == JobState.SUCCEEDED for job in every),
        what="every job to be sent, the queue's two at a time",
    )
    assert held.most["/two"] == 2
    assert held.arrived == {"/two": 6, "/free": 3}


def test_a_paused_queue_is_held_while_other_queues_and_unqueued_jobs_go_and_resuming_sends_it(
    owner, client, target, run_due, clock
):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    make_queue(user, "paused", paused=True)
    make_queue(user, "open")
    # More of the paused queue's jobs than a claim takes, all older than the others: they hold nothing back.
    waiting = [
        make_job(user, target.url_for("/hook"), at=clock.now() - timedelta(minutes=1), queue="paused") for _ in range(5)
    ]
    others = [make_job(user, target.url_for("/hook"), queue="open"), make_job(user, target.url_for("/hook"))]

    assert run_due(limit=3) == 2
    assert [state_of(job) for job in others] == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    assert {state_of(job) for job in waiting} == {JobState.SCHEDULED}
    assert run_due() == 0
    assert client.get(QUEUES + "paused").json()["oldest_due_lateness_ms"] == 60_000

    assert client.put(QUEUES + "paused", {"paused": False}, format="json").status_code == 200
    assert run_due() == 5
    assert {state_of(job) for job in waiting} == {JobState.SUCCEEDED}
    assert len(requests_to(target, "/hook")) == 7


def test_the_next_due_time_leaves_out_paused_queues(owner, clock):
    user, _ = owner
    make_queue(user, "paused", paused=True)
    make_job(user, "https://example.org/", at=clock.now() - timedelta(minutes=1), queue="paused")
    soon = make_job(user, "https://example.org/", at=clock.now() + timedelta(seconds=2))
    assert dispatch.jobs_next_due() == soon.next_attempt_at
    make_queue(user, "open")
    queued = make_job(user, "https://example.org/", at=clock.now() + timedelta(seconds=1), queue="open")
    assert dispatch.jobs_next_due() == queued.next_attempt_at


def next_due(now):
    """The next due time by the statement PostgreSQL runs, the same as by the queries other databases run."""
    due = dispatch.jobs_next_due(now)
    assert due == dispatch._next_due_with_queries(now)
    return due


def test_a_full_queues_jobs_are_next_due_when_its_first_lease_ends(owner, clock, settings):
    user = owner.user
    make_queue(user, "two", parallelism=2)
    jobs = [
        make_job(user, f"https://example.org/{n}", at=clock.now() - timedelta(seconds=10 - n), queue="two")
        for n in range(4)
    ]
    assert next_due(clock.now()) == jobs[0].next_attempt_at
    assert claimed_ids(clock.now(), limit=1) == [jobs[0].pk]
    first_lease_ends = clock.now() + timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    assert next_due(clock.now()) == jobs[1].next_attempt_at  # room for one more

    clock.advance(seconds=1)
    assert claimed_ids(clock.now(), limit=1) == [jobs[1].pk]
    assert next_due(clock.now()) == first_lease_ends  # full: nothing to claim until then (or a record)

    clock.set(first_lease_ends)
    assert claimed_ids(clock.now(), limit=1) == [jobs[2].pk]  # the lease that ended left room
    assert next_due(clock.now()) == first_lease_ends + timedelta(seconds=1)  # full again, until the second ends
    Job.objects.filter(pk=jobs[1].pk).update(state=JobState.SUCCEEDED, next_attempt_at=None, lease=None)
    assert next_due(clock.now()) == jobs[3].next_attempt_at  # recorded: room again


@pytest.mark.parametrize("rate", [2, 3, 0.25])
def test_a_queue_out_of_tokens_has_its_jobs_next_due_when_its_bucket_holds_one_again(owner, clock, rate):
    user = owner.user
    make_queue(user, "paced", rate_per_second=rate)
    for n in range(10):
        make_job(user, f"https://example.org/{n}", at=clock.now() - timedelta(seconds=30), queue="paced")
    assert len(claimed_ids(clock.now())) == max(1, rate)  # the burst
    due = next_due(clock.now())
    assert clock.now() < due <= clock.now() + timedelta(seconds=1 / rate, microseconds=1)
    assert claimed_ids(due - timedelta(microseconds=1)) == []
    assert len(claimed_ids(due)) == 1  # a token, not a microsecond too early for it


def test_a_dispatcher_turn_while_every_queue_with_due_jobs_is_full_reads_the_next_due_time_alone(
    owner, clock, settings
):
    settings.JOBS_DISPATCH_INTERVAL_MS = 100
    user = owner.user
    for name in ("a", "b"):
        make_queue(user, name, parallelism=2)
        for n in range(5):
            make_job(user, f"https://example.org/{name}/{n}", at=clock.now() - timedelta(seconds=10 - n), queue=name)
    assert turn(clock=clock, batch=100) == 0.1
    assert Job.objects.filter(state=JobState.RUNNING).count() == 4

    with CaptureQueriesContext(connection) as queries:
        assert turn(clock=clock, batch=100) == 0.1
    assert len(queries) == 1, [query["sql"] for query in queries]
    assert Job.objects.filter(state=JobState.RUNNING).count() == 4

    clock.set(next_due(clock.now()))  # the first leases end: their room is taken by the next jobs
    assert turn(clock=clock, batch=100) == 0.1
    held = Job.objects.filter(state=JobState.RUNNING, next_attempt_at__gt=clock.now())
    assert sorted(held.values_list("uri", flat=True)) == [f"https://example.org/{q}/{n}" for q in "ab" for n in (2, 3)]


def test_a_queued_jobs_time_written_past_the_times_python_holds_is_read_as_the_nearest_it_holds(owner, clock):
    user, _ = owner
    make_queue(user, "open")
    job = make_job(user, "https://example.org/", at=clock.now() + timedelta(minutes=1), queue="open")

    def written(time: str) -> None:  # around the API
        with connection.cursor() as cursor:
            cursor.execute("UPDATE jobs_job SET next_attempt_at = %s::timestamptz WHERE id = %s", [time, job.pk])

    written("20000-01-01T00:00:00Z")
    assert dispatch.jobs_next_due() == values.LATEST
    written("0100-01-01T00:00:00Z BC")
    assert dispatch.jobs_next_due() == values.EARLIEST
    assert selectors.queues_of_user(user=user, now=clock.now())[0].oldest_due == values.EARLIEST


def test_the_earliest_time_of_each_queue_is_read_once_in_its_index_order(owner, clock):
    """Ordered by the time read back (clamped), each queue's jobs would be sorted first, and the subquery run
    again at each mention of it in the clamp around it."""
    with CaptureQueriesContext(connection) as queries:
        dispatch._next_due_with_queries(clock.now())  # what other databases than PostgreSQL run
        list(selectors.queues_of_user(user=owner.user, now=clock.now()))
    queued_next_due, listed = queries[1]["sql"], queries[2]["sql"]
    for sql in (queued_next_due, listed):
        assert re.search(r'ORDER BY U\d+\."next_attempt_at" ASC', sql), sql
    # Three subqueries (the next job, the first lease to end, the jobs running), each once.
    assert queued_next_due.count('FROM "jobs_job"') == 3, queued_next_due


def test_a_queues_rate_refills_its_bucket_by_the_clock(owner, clock):
    user, _ = owner
    make_queue(user, "slow", rate_per_second=2)  # a burst of 2
    jobs = [
        make_job(user, f"https://example.org/{n}", at=clock.now() - timedelta(seconds=20 - n), queue="slow")
        for n in range(10)
    ]
    ids = [job.pk for job in jobs]

    assert claimed_ids(clock.now()) == ids[:2]
    assert claimed_ids(clock.now()) == []
    clock.advance(seconds=0.25)
    assert claimed_ids(clock.now()) == []  # half a token
    clock.advance(seconds=0.25)
    assert claimed_ids(clock.now()) == ids[2:3]
    clock.advance(seconds=30)  # the bucket holds no more than its burst
    assert claimed_ids(clock.now()) == ids[3:5]


def test_a_rate_below_one_a_second_lets_one_job_start_each_interval(owner, clock):
    user, _ = owner
    make_queue(user, "trickle", rate_per_second=0.5)
    jobs = [
        make_job(user, f"https://example.org/{n}", at=clock.now() - timedelta(seconds=9 - n), queue="trickle")
        for n in range(3)
    ]
    assert claimed_ids(clock.now()) == [jobs[0].pk]
    clock.advance(seconds=1.9)
    assert claimed_ids(clock.now()) == []
    clock.advance(seconds=0.1)
    assert claimed_ids(clock.now()) == [jobs[1].pk]


def test_parallelism_and_rate_together_take_the_smaller_room(owner, clock):
    user, _ = owner
    make_queue(user, "both", parallelism=3, rate_per_second=10)
    for n in range(20):
        make_job(user, f"https://example.org/{n}", queue="both")
    assert len(claimed_ids(clock.now())) == 3
    clock.advance(seconds=5)
    assert claimed_ids(clock.now()) == []  # tokens, but no room


ONE_STATEMENT_OR_QUERIES = pytest.mark.parametrize(
    "claim", [dispatch._claim_in_one_statement, dispatch._claim_with_queries], ids=["one statement", "queries"]
)


def queue_of(job_id) -> str:
    return Job.objects.select_related("queue").get(pk=job_id).queue.name


@ONE_STATEMENT_OR_QUERIES
def test_a_claim_takes_the_oldest_jobs_and_places_them_queue_by_queue_so_a_queues_jobs_share_a_chunk(
    owner, clock, claim
):
    # A chunk is one worker's task, and a worker records a queue's jobs under a lock of the queue: a queue's
    # jobs spread over two workers would have each worker's record wait for the other's.
    user, _ = owner
    for name in "abc":
        make_queue(user, name, parallelism=10)
    jobs = [
        make_job(user, f"https://example.org/{n}", at=clock.now() - timedelta(seconds=30 - n), queue="abc"[n % 3])
        for n in range(12)
    ]
    with transaction.atomic():
        rows = claim(now=clock.now(), limit=9, leases=[uuid.uuid4() for _ in range(3)], chunk=3, queued=True)

    assert {row.id for row in rows} == {job.pk for job in jobs[:9]}  # the oldest nine, three of each queue
    chunks = {}
    for row in rows:
        chunks.setdefault(row.lease, []).append(row.id)
    assert [{queue_of(job_id) for job_id in ids} for ids in chunks.values()] == [{"a"}, {"b"}, {"c"}]
    assert [row.id for row in rows] == [job.pk for name in "abc" for job in jobs[:9] if queue_of(job.pk) == name]


@ONE_STATEMENT_OR_QUERIES
def test_a_claim_cut_by_its_limit_takes_tokens_only_for_the_jobs_it_took(owner, clock, claim):
    user, _ = owner
    for name in ("older", "newer"):
        make_queue(user, name, rate_per_second=5)  # a burst of 5
    for n in range(20):
        queue = "older" if n < 10 else "newer"
        make_job(user, f"https://example.org/{n}", at=clock.now() - timedelta(seconds=30 - n), queue=queue)

    def took(limit: int) -> list[str]:
        with transaction.atomic():
            rows = claim(now=clock.now(), limit=limit, leases=[uuid.uuid4()], chunk=limit, queued=True)
        return sorted(queue_of(row.id) for row in rows)

    assert took(2) == ["older"] * 2
    assert took(100) == ["newer"] * 5 + ["older"] * 3


def test_a_job_whose_lease_expired_counts_until_then_and_is_claimed_again_within_the_queues_room(
    owner, clock, settings
):
    user, _ = owner
    make_queue(user, "one", parallelism=1)
    first, second = (
        make_job(user, f"https://example.org/{n}", at=clock.now() - timedelta(seconds=2 - n), queue="one")
        for n in range(2)
    )

    assert claimed_ids(clock.now()) == [first.pk]
    clock.advance(seconds=settings.JOBS_LEASE_SECONDS - 1)
    assert claimed_ids(clock.now()) == []  # the first still holds its lease: in flight
    clock.advance(seconds=1)
    # Both are due now (the first's lease ended), yet the queue takes one at a time: the older.
    assert claimed_ids(clock.now()) == [second.pk]
    Job.objects.filter(pk=second.pk).update(state=JobState.SUCCEEDED, next_attempt_at=None, lease=None)
    assert claimed_ids(clock.now()) == [first.pk]
    first.refresh_from_db()
    assert [attempt.outcome for attempt in first.attempts.all()] == [AttemptOutcome.LOST]
    assert first.attempt_count == 2


def test_a_retry_waits_for_room_in_its_queue(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/fails").respond_with_data("no", status=500)
    target.expect_request("/hook").respond_with_data("ok")
    make_queue(user, "one", parallelism=1)
    failing = make_job(user, target.url_for("/fails"), queue="one", retry_schedule=[10])
    assert run_due() == 1
    assert state_of(failing) == JobState.SCHEDULED  # its retry, 10 s on
    clock.advance(seconds=10)
    blocker = make_job(user, target.url_for("/hook"), at=clock.now() - timedelta(seconds=1), queue="one")
    assert claimed_ids(clock.now()) == [blocker.pk]  # older, so first; the queue is then full
    assert claimed_ids(clock.now()) == []
    assert state_of(failing) == JobState.SCHEDULED


def test_two_dispatchers_together_never_exceed_a_queues_room(owner, transactional_db, clock):
    user, _ = owner
    make_queue(user, "four", parallelism=4)
    for n in range(10):
        make_job(user, f"https://example.org/{n}", queue="four")
    held, release, first = threading.Event(), threading.Event(), []

    def hold_a_claim_open():
        from django.db import connection

        try:
            with transaction.atomic():
                first.extend(claimed_ids(clock.now(), limit=3))
                held.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_a_claim_open)
    holder.start()
    held.wait(30)
    second = claimed_ids(clock.now())  # the queue is locked by the open claim: skipped
    release.set()
    holder.join()
    third = claimed_ids(clock.now())

    assert (len(first), second, len(third)) == (3, [], 1)


def test_callbacks_are_not_queued(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    target.expect_request("/done").respond_with_data("noted")
    make_queue(user, "paused", paused=True)
    job = make_job(user, target.url_for("/hook"), queue="paused", callback_uri=target.url_for("/done"))
    JobQueue.objects.filter(name="paused").update(paused=False)
    assert run_due() == 1
    JobQueue.objects.filter(name="paused").update(paused=True)
    assert run_due() == 1  # the callback, though its job's queue is paused
    callback = Job.objects.get(parent=job)
    assert (callback.queue, callback.state) == (None, JobState.SUCCEEDED)


@pytest.mark.django_db
def test_the_claim_without_postgresql_features_applies_the_same_flow_control(owner, clock):
    user, _ = owner
    make_queue(user, "two", parallelism=2)
    make_queue(user, "rated", rate_per_second=1)
    make_queue(user, "paused", paused=True)
    for name in ("two", "rated", "paused"):
        for n in range(3):
            make_job(user, f"https://example.org/{name}/{n}", at=clock.now() - timedelta(seconds=3 - n), queue=name)
    make_job(user, "https://example.org/free")

    def claim(limit: int = 100) -> list[str]:
        queued_leases, other_leases = ([uuid.uuid4() for _ in range(limit)] for _ in range(2))
        with transaction.atomic():
            now = clock.now()
            rows = dispatch._claim_with_queries(now=now, limit=limit, leases=queued_leases, chunk=1, queued=True)
            rows += dispatch._claim_with_queries(now=now, limit=limit, leases=other_leases, chunk=1)
        return sorted(Job.objects.get(pk=row[0]).uri.split("/")[3] for row in rows)

    assert claim() == ["free", "rated", "two", "two"]
    assert claim() == []
    clock.advance(seconds=1)
    assert claim() == ["rated"]


def test_a_worker_sends_queued_and_unqueued_jobs_alike(owner, target, clock, transactional_db):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    make_queue(user, "emails", parallelism=5)
    jobs = [make_job(user, target.url_for("/hook"), queue="emails") for _ in range(3)]
    with celery_worker():
        assert dispatch_once() == 3
        wait_until(lambda: all(state_of(job) == JobState.SUCCEEDED for job in jobs), what="the queue's jobs")


def test_a_queues_room_is_used_again_as_soon_as_its_job_is_recorded_not_an_interval_later(
    owner, target, clock, settings, transactional_db
):
    settings.JOBS_DISPATCH_INTERVAL_MS = 120_000  # the dispatcher would otherwise wait two minutes
    user, _ = owner
    target.expect_request("/one").respond_with_data("ok")
    make_queue(user, "one", parallelism=1)
    jobs = [make_job(user, target.url_for("/one"), queue="one") for _ in range(3)]
    thread, stop = start_dispatcher_thread(clock=clock)
    try:
        with celery_worker():
            wait_until(
                lambda: all(state_of(job) == JobState.SUCCEEDED for job in jobs),
                what="each job to be claimed as soon as the one before it was recorded",
            )
    finally:
        stop.set()
        thread.join(timeout=150)
    assert len(requests_to(target, "/one")) == 3


def test_a_paused_queue_waits_while_the_others_go_and_resuming_wakes_the_dispatcher(
    owner, client, target, clock, settings, transactional_db
):
    settings.JOBS_DISPATCH_INTERVAL_MS = 120_000  # without being woken, the dispatcher would wait two minutes
    user, _ = owner
    for path in ("/paused", "/open", "/free"):
        target.expect_request(path).respond_with_data("ok")
    make_queue(user, "paused", paused=True)
    make_queue(user, "open")
    held = make_job(user, target.url_for("/paused"), queue="paused")
    others = [make_job(user, target.url_for("/open"), queue="open"), make_job(user, target.url_for("/free"))]
    thread, stop = start_dispatcher_thread(clock=clock)
    try:
        with celery_worker():
            wait_until(lambda: all(state_of(job) == JobState.SUCCEEDED for job in others), what="the others to be sent")
            assert (state_of(held), requests_to(target, "/paused")) == (JobState.SCHEDULED, [])
            assert client.put(QUEUES + "paused", {"paused": False}, format="json").status_code == 200
            wait_until(lambda: state_of(held) == JobState.SUCCEEDED, what="the resumed queue's job to be sent")
    finally:
        stop.set()
        thread.join(timeout=150)
    assert len(requests_to(target, "/paused")) == 1


def test_a_worker_recording_a_queued_job_sends_the_queues_next_itself_within_its_room(
    owner, target, holding, worker, clock
):
    user, _ = owner
    make_queue(user, "one", parallelism=1)
    held = holding("/one")
    held.let_go.set()  # answered at once; `most` still counts those answered together
    jobs = [make_job(user, target.url_for("/one"), queue="one", timeout=30) for _ in range(4)]

    assert dispatch_once() == 1  # the only dispatch: the worker claims the other three, one after the other
    wait_until(
        lambda: all(state_of(job) == JobState.SUCCEEDED for job in jobs), what="each job to follow the one before"
    )
    assert held.arrived == {"/one": 4}
    assert held.most == {"/one": 1}
    assert [list(job.attempts.values_list("outcome", flat=True)) for job in jobs] == [[AttemptOutcome.SUCCEEDED]] * 4


def test_a_workers_claim_of_a_queues_next_jobs_keeps_to_its_rate_and_pause(owner, target, holding, worker, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    held = holding("/held")
    make_queue(user, "slow", rate_per_second=1)  # one token, and the clock stands still: no more
    make_queue(user, "paused", parallelism=1)
    slow = [make_job(user, target.url_for("/hook"), queue="slow") for _ in range(3)]
    paused = [make_job(user, target.url_for("/held"), queue="paused", timeout=30) for _ in range(3)]

    assert dispatch_once() == 2
    wait_until(lambda: held.arrived == {"/held": 1}, what="the paused queue's first job to be under way")
    services.queue_set(user=user, name="paused", paused=True)
    held.let_go.set()
    wait_until(lambda: state_of(slow[0]) == state_of(paused[0]) == JobState.SUCCEEDED, what="the first of each")
    wait_until(lambda: services.deliveries.held() == 0, what="the worker to be done with them")
    assert [state_of(job) for job in slow[1:] + paused[1:]] == [JobState.SCHEDULED] * 4
    assert len(requests_to(target, "/hook")) == 1

    clock.advance(seconds=1)  # a token: one more of "slow" may start
    assert dispatch_once() == 1
    wait_until(lambda: state_of(slow[1]) == JobState.SUCCEEDED, what="the second of the rated queue")
    wait_until(lambda: services.deliveries.held() == 0, what="the worker to be done with it")
    assert state_of(slow[2]) == JobState.SCHEDULED


def test_a_draining_worker_records_its_queued_jobs_without_taking_on_their_queues_next(
    owner, target, holding, worker, clock
):
    user, _ = owner
    make_queue(user, "one", parallelism=1)
    held = holding("/one")
    jobs = [make_job(user, target.url_for("/one"), queue="one", timeout=30) for _ in range(3)]
    assert dispatch_once() == 1
    wait_until(lambda: held.arrived == {"/one": 1}, what="the first job to be under way")

    drained = []
    draining = threading.Thread(target=lambda: drained.append(services.deliveries.drain(20)))
    draining.start()
    wait_until(lambda: services.deliveries._draining == 1, what="the drain to begin")
    held.let_go.set()
    draining.join(25)

    assert drained == [True]
    assert [state_of(job) for job in jobs] == [JobState.SUCCEEDED, JobState.SCHEDULED, JobState.SCHEDULED]
    assert held.arrived == {"/one": 1}


def waiting_for_a_lock() -> int:
    """Sessions of the test database waiting for a row lock now."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def in_a_thread(work) -> tuple[threading.Thread, list]:
    """Run `work` in a thread of its own (its own database connection); its result or error in the list."""
    from django.db import connection

    outcome = []

    def run():
        try:
            outcome.append(work())
        except Exception as error:  # what the test checks
            outcome.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_the_statements_of_each_dispatcher_turn_and_each_record_are_prepared_on_their_connection(owner, clock):
    user, _ = owner
    make_queue(user, "one", parallelism=1)
    for n in range(2):
        make_job(user, "https://example.org/one", queue="one", at=clock.now() - timedelta(seconds=2 - n))
    make_job(user, "https://example.org/free")

    dispatch.jobs_next_due(clock.now())
    claims = services.jobs_claim_due(now=clock.now(), limit=10)
    finished = [
        job for lease, ids in claims for job in services.jobs_claimed(job_ids=[str(pk) for pk in ids], lease=str(lease))
    ]
    failed = RequestResult(response=None, error="HTTP 500", started=clock.now(), finished=clock.now())
    assert len(record_results([(job, failed) for job in finished], claim_next=True)) == 1  # the queue's next

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [text for (text,) in cursor.fetchall()]
    hot = [
        dispatch.NEXT_DUE_SQL,
        dispatch.QUEUES_LOCK_SQL,
        f"{dispatch.QUEUED_CLAIM_SQL} RETURNING {dispatch.CLAIMED}",
        f"{dispatch.CLAIM_SQL} RETURNING {dispatch.CLAIMED}",
        delivery.RECORD_SQL,
        f"{dispatch.QUEUED_CLAIM_SQL} RETURNING {dispatch.CLAIMED_JOBS}",
    ]

    def bound(text: str, sql: str) -> bool:  # the statement as bound on the server: the same around its parameters
        return text.startswith(sql.split("%(")[0]) and text.endswith(sql.rsplit(")s", 1)[-1])

    assert [sum(bound(text, sql) for text in statements) for sql in hot] == [1] * len(hot)


def test_a_record_waits_for_a_queue_another_record_holds_and_keeps_the_room_it_left(owner, transactional_db, clock):
    """Two worker processes recording jobs of the same queue at once: the second waits for the first to commit and
    claims the queue's next job itself, rather than skipping the queue and leaving its room to the dispatchers."""
    user, _ = owner
    make_queue(user, "shared", parallelism=2)
    url = "https://example.org/shared"
    first, second, following = (
        make_job(user, url, queue="shared", at=clock.now() + timedelta(seconds=n)) for n in range(3)
    )
    clock.advance(seconds=2)
    [(lease, ids)] = services.jobs_claim_due(now=clock.now(), limit=10)
    assert set(ids) == {first.pk, second.pk}  # the queue is full
    finished = [job for job in services.jobs_claimed(job_ids=[str(job_id) for job_id in ids], lease=str(lease))]
    done = RequestResult(response=None, error="HTTP 500", started=clock.now(), finished=clock.now())
    recording, recorded = threading.Event(), threading.Event()

    def record_and_hold_until_told():
        with transaction.atomic():  # the other process's record, between its locks and its commit
            with connection.cursor() as cursor:
                cursor.execute(dispatch.QUEUES_LOCK_ONLY_SQL, {"only": [first.queue_id]})
            recording.set()
            recorded.wait(30)

    holder, _ = in_a_thread(record_and_hold_until_told)
    recording.wait(30)
    recorder, outcome = in_a_thread(
        lambda: record_results([(job, done) for job in finished if job.pk == second.pk], claim_next=True)
    )
    wait_until(lambda: waiting_for_a_lock() == 1, what="the record to wait for the queue")
    recorded.set()
    holder.join(30)
    recorder.join(30)

    [successors] = outcome
    assert [job.pk for job in successors] == [following.pk]
    assert Job.objects.get(pk=following.pk).state == JobState.RUNNING


@pytest.mark.parametrize("how", ["create", "batch", "update"])
def test_a_job_saved_in_a_queue_being_removed_is_refused_with_a_400_not_a_failed_commit(
    owner, transactional_db, clock, how
):
    user, _ = owner
    queue = make_queue(user, "going")
    moved = make_job(user, "https://example.org/moved")
    removing, removed = threading.Event(), threading.Event()

    def remove_and_hold_until_told():
        with transaction.atomic():
            services.queue_delete(queue=queue)
            removing.set()
            removed.wait(30)

    remover, _ = in_a_thread(remove_and_hold_until_told)
    removing.wait(30)
    save = {
        "create": lambda: make_job(user, "https://example.org/a", queue="going"),
        "batch": lambda: services.jobs_create(
            user=user, jobs=[services.job_new(user=user, uri="https://example.org/b", queue="going")]
        ),
        "update": lambda: services.job_update(job=moved, queue="going"),
    }[how]
    saver, outcome = in_a_thread(save)
    wait_until(lambda: waiting_for_a_lock() == 1, what="the save to wait for the removal")
    removed.set()
    remover.join(30)
    saver.join(30)

    [error] = outcome
    assert isinstance(error, JobParameterError), error
    assert error.status_code == 400
    assert "removed just now" in str(error.detail)
    assert not JobQueue.objects.filter(name="going").exists()
    assert Job.objects.filter(queue__isnull=False).count() == 0


def test_a_queue_removed_while_a_job_is_saved_in_it_waits_and_is_refused_as_not_empty(owner, transactional_db, clock):
    user, _ = owner
    queue = make_queue(user, "busy")
    saving, saved = threading.Event(), threading.Event()

    def save_and_hold_until_told():
        with transaction.atomic():
            make_job(user, "https://example.org/a", queue="busy")
            saving.set()
            saved.wait(30)

    saver, _ = in_a_thread(save_and_hold_until_told)
    saving.wait(30)
    remover, outcome = in_a_thread(lambda: transaction.atomic(services.queue_delete)(queue=queue))
    wait_until(lambda: waiting_for_a_lock() == 1, what="the removal to wait for the save")
    saved.set()
    saver.join(30)
    remover.join(30)

    [error] = outcome
    assert error.status_code == 409, error
    assert Job.objects.get(queue__name="busy").state == JobState.SCHEDULED


def backlog(user, clock) -> None:
    """3,000 jobs due now in four queues of parallelism 2, stored at once (the table has no statistics yet)."""
    queues = [make_queue(user, f"q{n}", parallelism=2) for n in range(4)]
    Job.objects.bulk_create(
        Job(user=user, uri="https://example.org/", at=clock.now(), next_attempt_at=clock.now(), timeout=5, queue=queue)
        for queue in queues
        for _ in range(750)
    )


def test_which_queues_have_due_jobs_is_asked_of_each_queue_on_a_table_without_statistics(owner, clock):
    """A backlog in a table that has just grown (no statistics yet): the dispatcher's lock of the queues with due
    jobs asks each queue's own index entries, rather than reading every queue's due jobs at every turn."""
    user = owner.user
    backlog(user, clock)
    plan = plan_without_statistics(dispatch.QUEUES_LOCK_SQL, {"now": clock.now()})
    assert "Aggregate" not in plan.split("SubPlan")[0], plan  # no reading of all due jobs, grouped by queue
    assert "jobs_job_queue_due" in plan, plan


def test_the_next_due_time_is_one_statement_reading_each_index_on_a_table_without_statistics(owner, clock):
    """At each dispatcher turn that claims less than its batch: the next job without a queue, each open queue's
    next job and the next recurring run time in one statement, each read from its own index entries, also when a
    backlog has just grown the table (no statistics yet), and the same time as the queries other databases run."""
    user = owner.user
    backlog(user, clock)
    unqueued = make_job(user, "https://example.org/", at=clock.now() - timedelta(seconds=5))
    make_job(user, "https://example.org/", cron="* * * * *")
    parameters = {"now": clock.now(), "earliest": values.EARLIEST, "latest": values.LATEST}
    plan = plan_without_statistics(dispatch.NEXT_DUE_SQL, parameters)
    assert not re.search(r"Seq Scan on jobs_job\b", plan), plan
    for index in ("jobs_job_due", "jobs_job_queue_due", "jobs_job_queue_running", "jobs_job_recurring_due"):
        assert index in plan, plan

    with CaptureQueriesContext(connection) as queries:
        due = dispatch.jobs_next_due()
    assert len(queries) == 1
    assert due == unqueued.next_attempt_at
    assert due == min(dispatch._next_due_with_queries(clock.now()), recurring_next_run())
