"""Recurring jobs: a cron in a time zone makes a firing at every run time, each sent, retried and
called back as a one-off job by the real dispatcher and delivery code, on the test's clock.

The clock starts at 2030-01-31 18:36:21 UTC (conftest), so `* * * * *` next runs at 18:37:00.
"""

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs import services
from jobs.dispatcher import pause
from jobs.models import Job, JobKind, JobState
from jobs.services.recurring import recurring_next_run

from .helpers import make_job, plan_without_statistics, requests_to

pytestmark = pytest.mark.django_db

HOOK = "https://example.org/hook"


def at(hour: int, minute: int, second: int = 0, *, day: int = 31, month: int = 1) -> datetime:
    return datetime(2030, month, day, hour, minute, second, tzinfo=UTC)


def answered(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()["success"]["job"]


def firings_of(job) -> list[Job]:
    return list(Job.objects.filter(recurring_job_id=job.pk).order_by("at"))


def shown(api, key, job) -> dict:
    return answered(api.get(f"/jobs/{job.pk}.json", {"apikey": key}))


def create_form(api, key, **fields):
    return api.post("/jobs.json", {**{f"job[{name}]": value for name, value in fields.items()}, "apikey": key})


@pytest.mark.parametrize("form", ["query", "form", "multipart", "json", "single-quoted json"])
def test_it_creates_a_recurring_job_in_every_parameter_form(owner, jobs_api, clock, form):
    _, key = owner
    fields = {"uri": HOOK, "cron": "*/15 9-17 * * mon-fri", "time_zone": "America/New_York", "paused": "false"}
    if form == "query":
        query = "&".join(f"job[{name}]={value}" for name, value in fields.items()).replace(" ", "%20")
        response = jobs_api.post("/jobs.json", QUERY_STRING=f"{query}&apikey={key}")
    elif form == "form":
        response = create_form(jobs_api, key, **fields)
    elif form == "multipart":
        response = jobs_api.post(
            "/jobs.json",
            {**{f"job[{name}]": value for name, value in fields.items()}, "apikey": key},
            format="multipart",
        )
    elif form == "json":
        body = json.dumps({"job": {**fields, "paused": False}, "apikey": key})
        response = jobs_api.generic("POST", "/jobs.json", body, content_type="application/json")
    else:
        body = (
            "{ 'job':{ "
            + ", ".join(f"'{name}':'{value}'" for name, value in fields.items())
            + f" }}, 'apikey':'{key}' }}"
        )
        response = jobs_api.generic("POST", "/jobs.json", body, content_type="application/json")
    job = answered(response)
    # Thursday 18:36 UTC is 13:36 in New York: the next quarter of an hour of its working day.
    assert job["kind"] == "recurring"
    assert job["cron"] == "*/15 9-17 * * mon-fri"
    assert job["time_zone"] == "America/New_York"
    assert job["paused"] is False
    assert job["next_run_at"] == "2030-01-31 18:45:00 +0000"
    assert job["at"] == job["next_run_at"]
    assert job["next_attempt_at"] is None
    assert job["recurring_job"] is None


def test_a_cron_without_a_zone_is_read_in_jobs_time_zone(owner, jobs_api, clock, settings):
    settings.JOBS_TIME_ZONE = "Asia/Kolkata"  # +05:30: 18:36 UTC is 00:06 on 1 February there
    _, key = owner
    job = answered(create_form(jobs_api, key, uri=HOOK, cron="0 1 * * *"))
    assert job["time_zone"] == "Asia/Kolkata"
    assert job["next_run_at"] == "2030-02-01 01:00:00 +0530"
    assert Job.objects.get(pk=job["id"]).next_run_at == at(19, 30)


@pytest.mark.parametrize(
    ("fields", "parameter", "message"),
    [
        ({"cron": "* * * * *", "at": "2030-02-01T00:00:00Z"}, "at", "not both"),
        ({"cron": "61 * * * *"}, "cron", "five-field cron"),
        ({"cron": "* * * *"}, "cron", "five-field cron"),
        ({"cron": "* * * * * *"}, "cron", "five-field cron"),
        ({"cron": "@hourly"}, "cron", "five-field cron"),
        ({"cron": "0 0 30 2 *"}, "cron", "Never runs"),
        ({"cron": "* * * * *", "time_zone": "Mars/Olympus_Mons"}, "time_zone", "IANA time zone"),
        ({"cron": "* * * * *", "time_zone": "../../etc/passwd"}, "time_zone", "IANA time zone"),
        ({"cron": "* * * * *", "paused": "maybe"}, "paused", "true or false"),
        ({"time_zone": "Europe/London"}, "time_zone", "give job[cron] too"),
        ({"paused": "true"}, "paused", "give job[cron] too"),
    ],
)
def test_it_refuses_a_bad_recurring_job_and_says_why(owner, jobs_api, clock, fields, parameter, message):
    _, key = owner
    response = create_form(jobs_api, key, uri=HOOK, **fields)
    assert response.status_code == 400
    assert set(response.json()["error"]) == {parameter}
    assert message in response.json()["error"][parameter]
    assert not Job.objects.exists()


def test_a_one_off_job_cannot_become_recurring_nor_a_recurring_one_take_an_at(owner, jobs_api, clock):
    user, key = owner
    one_off = make_job(user, HOOK)
    recurring = make_job(user, HOOK, cron="* * * * *")
    response = jobs_api.put(f"/jobs/{one_off.pk}.json?apikey={key}&job[cron]=*%20*%20*%20*%20*")
    assert response.status_code == 400
    assert "Only a recurring job has cron" in response.json()["error"]["cron"]
    response = jobs_api.put(f"/jobs/{recurring.pk}.json?apikey={key}&job[at]=2030-02-01T00:00:00Z")
    assert response.status_code == 400
    assert "change job[cron]" in response.json()["error"]["at"]
    assert Job.objects.get(pk=one_off.pk).kind == JobKind.REQUEST
    assert Job.objects.get(pk=recurring.pk).next_run_at == at(18, 37)


def test_each_firing_is_delivered_with_its_own_attempts_retries_and_callbacks(owner, jobs_api, target, run_due, clock):
    """A firing still retrying does not hold back the next one: they overlap."""
    user, key = owner
    target.expect_request("/hook").respond_with_data("down", status=500)
    target.expect_request("/failed", method="POST").respond_with_data("noted")
    job = make_job(
        user,
        target.url_for("/hook"),
        method="POST",
        body="tick",
        cron="* * * * *",
        retry_schedule=[90],
        failure_callback_uri=target.url_for("/failed"),
    )
    assert run_due() == 0  # 18:36:21: no run time yet
    assert shown(jobs_api, key, job)["next_run_at"] == "2030-01-31 18:37:00 +0000"
    for moment, next_run in [
        (at(18, 37), "18:38:00"),  # first firing, its first attempt fails
        (at(18, 38), "18:39:00"),  # second firing, while the first still waits for its retry
        (at(18, 38, 30), "18:39:00"),  # the first firing's retry: it fails for good
        (at(18, 39), "18:40:00"),  # third firing (and the first one's failure callback)
        (at(18, 39, 30), "18:40:00"),  # the second firing's retry
    ]:
        clock.set(moment)
        assert run_due() >= 1
        assert shown(jobs_api, key, job)["next_run_at"] == f"2030-01-31 {next_run} +0000"

    first, second, third = firings_of(job)
    assert [firing.at for firing in (first, second, third)] == [at(18, 37), at(18, 38), at(18, 39)]
    for firing, state, starts in [
        (first, JobState.FAILED, [at(18, 37), at(18, 38, 30)]),
        (second, JobState.FAILED, [at(18, 38), at(18, 39, 30)]),
        (third, JobState.SCHEDULED, [at(18, 39)]),
    ]:
        assert firing.state == state
        assert firing.kind == JobKind.REQUEST
        assert [attempt.started_at for attempt in firing.attempts.all()] == starts
        assert [attempt.number for attempt in firing.attempts.all()] == list(range(1, len(starts) + 1))
    sent = requests_to(target, "/hook")
    assert [request.headers["Job-Attempt"] for request in sent] == ["1", "1", "2", "1", "2"]
    assert [request.get_data(as_text=True) for request in sent] == ["tick"] * 5
    assert len({request.headers["Job-Delivery-Id"] for request in sent}) == 3  # one per firing
    assert Job.objects.get(pk=job.pk).attempts.count() == 0  # the recurring job itself is never sent
    clock.set(at(18, 39, 31))
    run_due()  # the second firing's failure callback
    assert len(requests_to(target, "/failed")) == 2
    assert {callback.parent_id for callback in Job.objects.filter(kind=JobKind.FAILURE_CALLBACK)} == {
        first.pk,
        second.pk,
    }


def test_a_change_applies_to_future_firings_and_a_new_cron_starts_afresh(owner, jobs_api, target, run_due, clock):
    user, key = owner
    target.expect_request("/old").respond_with_data("ok")
    target.expect_request("/new").respond_with_data("ok")
    job = make_job(user, target.url_for("/old"), cron="* * * * *")
    clock.set(at(18, 37))
    assert run_due() == 1
    response = jobs_api.post(
        f"/jobs/{job.pk}.json",
        {"_method": "PUT", "job[uri]": target.url_for("/new"), "job[cron]": "0 * * * *", "apikey": key},
    )
    changed = answered(response)
    assert changed["next_run_at"] == changed["at"] == "2030-01-31 19:00:00 +0000"
    clock.set(at(18, 38))
    assert run_due() == 0
    clock.set(at(19, 0))
    assert run_due() == 1
    assert [firing.uri for firing in firings_of(job)] == [target.url_for("/old"), target.url_for("/new")]
    assert [firing.state for firing in firings_of(job)] == [JobState.SUCCEEDED, JobState.SUCCEEDED]


def pause_or_resume(api, key, job, paused: bool, form: str) -> dict:
    value = "true" if paused else "false"
    if form == "put query":
        return answered(api.put(f"/jobs/{job.pk}.json?apikey={key}&job[paused]={value}"))
    if form == "post _method=PUT":
        return answered(api.post(f"/jobs/{job.pk}.json", {"_method": "PUT", "job[paused]": value, "apikey": key}))
    body = json.dumps({"job": {"paused": paused}, "apikey": key})
    return answered(api.generic("PUT", f"/jobs/{job.pk}.json", body, content_type="application/json"))


@pytest.mark.parametrize("form", ["put query", "post _method=PUT", "put json"])
def test_a_paused_job_makes_no_firings_until_it_is_resumed(owner, jobs_api, target, run_due, clock, form):
    user, key = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"), cron="*/5 * * * *")
    paused = pause_or_resume(jobs_api, key, job, True, form)
    assert paused["paused"] is True
    assert paused["next_run_at"] is None
    for moment in (at(18, 40), at(18, 45), at(18, 50)):
        clock.set(moment)
        assert run_due() == 0
    clock.set(at(18, 52))  # the last run time missed, 18:50, is two minutes late: not fired
    resumed = pause_or_resume(jobs_api, key, job, False, form)
    assert resumed["paused"] is False
    assert resumed["next_run_at"] == "2030-01-31 18:55:00 +0000"
    assert run_due() == 0
    assert firings_of(job) == []
    clock.set(at(18, 55))
    assert run_due() == 1
    assert [firing.at for firing in firings_of(job)] == [at(18, 55)]


@pytest.mark.parametrize(
    ("resumed_at", "fired"),
    [
        (at(18, 40, 30), [at(18, 40)]),  # 30 s late: fired at once
        (at(18, 40, 59), [at(18, 40)]),  # 59 s late: fired
        (at(18, 41), []),  # a minute late: not fired
        (at(18, 45, 10), [at(18, 45)]),  # only the last missed one; 18:40 is not replayed
    ],
)
def test_resuming_fires_the_last_missed_run_time_only_if_less_than_a_minute_late(
    owner, jobs_api, target, run_due, clock, resumed_at, fired
):
    user, key = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"), cron="*/5 * * * *", paused=True)
    assert shown(jobs_api, key, job)["next_run_at"] is None
    clock.set(resumed_at)
    resumed = answered(jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[paused]=false"))
    assert Job.objects.get(pk=job.pk).next_run_at > clock.now()  # the next run time is in the future
    assert resumed["next_run_at"] == f"2030-01-31 18:{resumed_at.minute // 5 * 5 + 5}:00 +0000"
    assert [firing.at for firing in firings_of(job)] == fired
    assert run_due() == len(fired)
    assert len(requests_to(target, "/hook")) == len(fired)
    # Pausing and resuming again at once does not fire the same run time twice.
    jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[paused]=true")
    jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[paused]=false")
    assert len(firings_of(job)) == len(fired)


@pytest.mark.parametrize(
    ("back_at", "fired"),
    [
        (at(18, 50, 30), [at(18, 50)]),  # the last run time missed, 30 s late, is fired; 18:40 and 18:45 are not
        (at(18, 51), []),  # a minute late: nothing is replayed
    ],
)
def test_run_times_missed_while_no_dispatcher_ran_are_not_replayed_but_the_last_within_a_minute(
    owner, target, run_due, clock, back_at, fired
):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"), cron="*/5 * * * *")
    clock.set(back_at)  # the service was down from 18:36:21 to now
    assert run_due() == len(fired)
    assert [firing.at for firing in firings_of(job)] == fired
    assert [firing.state for firing in firings_of(job)] == [JobState.SUCCEEDED] * len(fired)
    assert Job.objects.get(pk=job.pk).next_run_at == at(18, 55)


def utc(*moments: str) -> list[datetime]:
    return [datetime.fromisoformat(f"2030-{moment}+00:00") for moment in moments]


@pytest.mark.parametrize(
    ("zone", "cron", "start", "run_times"),
    [
        # London springs forward at 01:00 GMT on 31 March: 01:30 does not exist; it runs at the change (02:00 BST).
        ("Europe/London", "30 1 * * *", "03-29T12:00", utc("03-30T01:30", "03-31T01:00", "04-01T00:30")),
        # London falls back at 02:00 BST on 27 October: 01:30 happens twice, and runs twice (BST, then GMT).
        (
            "Europe/London",
            "30 1 * * *",
            "10-25T12:00",
            utc("10-26T00:30", "10-27T00:30", "10-27T01:30", "10-28T01:30"),
        ),
        # An hourly job runs once every real hour, through the repeated one too.
        ("Europe/London", "0 * * * *", "10-26T23:30", utc("10-27T00:00", "10-27T01:00", "10-27T02:00")),
        # New York springs forward at 02:00 EST on 10 March: 02:30 runs at the change (03:00 EDT).
        ("America/New_York", "30 2 * * *", "03-09T12:00", utc("03-10T07:00", "03-11T06:30")),
        # New York falls back at 02:00 EDT on 3 November: 01:30 runs twice (EDT, then EST).
        ("America/New_York", "30 1 * * *", "11-02T12:00", utc("11-03T05:30", "11-03T06:30", "11-04T06:30")),
    ],
)
def test_daylight_saving_changes_follow_cron_in_the_jobs_zone(
    owner, target, run_due, clock, zone, cron, start, run_times
):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    [start_time] = utc(start)
    clock.set(start_time)
    job = make_job(user, target.url_for("/hook"), cron=cron, time_zone=zone)
    for run_time in run_times:
        assert Job.objects.get(pk=job.pk).next_run_at == run_time
        clock.set(run_time - timedelta(microseconds=1))
        assert run_due() == 0
        clock.set(run_time)
        assert run_due() == 1
    assert [firing.at for firing in firings_of(job)] == run_times
    local = [firing.at.astimezone(ZoneInfo(zone)).strftime("%d %H:%M %z") for firing in firings_of(job)]
    assert len(local) == len(set(local))  # each firing at a distinct local day, time and offset


def test_deleting_a_recurring_job_stops_its_firings_and_those_made_finish(owner, jobs_api, target, run_due, clock):
    user, key = owner
    target.expect_request("/hook").respond_with_data("down", status=500)
    job = make_job(user, target.url_for("/hook"), cron="* * * * *", retry_schedule=[30])
    clock.set(at(18, 37))
    assert run_due() == 1
    [firing] = firings_of(job)
    assert firing.state == JobState.SCHEDULED  # waiting for its retry
    response = jobs_api.delete(f"/jobs/{job.pk}.json?apikey={key}")
    assert response.json() == {"success": {"message": "Job deleted"}}
    assert not Job.objects.filter(pk=job.pk).exists()
    clock.set(at(18, 37, 30))
    assert run_due() == 1  # the firing's retry
    for minute in (38, 39, 40):
        clock.set(at(18, minute))
        assert run_due() == 0
    firing.refresh_from_db()
    assert firing.state == JobState.FAILED
    assert firing.attempts.count() == 2
    assert firing.recurring_job_id == job.pk  # it still says which job made it
    assert len(requests_to(target, "/hook")) == 2


def test_the_list_tells_recurring_jobs_from_firings_and_one_off_jobs(owner, outsider, jobs_api, target, run_due, clock):
    user, key = owner
    target.expect_request("/hook").respond_with_data("ok")
    one_off = make_job(user, target.url_for("/hook"), at=at(20, 0))
    recurring = make_job(user, target.url_for("/hook"), cron="* * * * *")
    make_job(outsider.user, target.url_for("/hook"), cron="* * * * *")
    clock.set(at(18, 37))
    run_due()
    [firing] = firings_of(recurring)

    def listed(**filters) -> dict[str, dict]:
        response = jobs_api.get("/jobs.json", {"apikey": key, **filters})
        assert response.status_code == 200, response.content
        return {job["id"]: job for job in response.json()["success"]["jobs"]}

    everything = listed()
    assert set(everything) == {str(one_off.pk), str(recurring.pk), str(firing.pk)}
    assert everything[str(recurring.pk)]["kind"] == "recurring"
    assert everything[str(firing.pk)]["kind"] == "request"
    assert everything[str(firing.pk)]["recurring_job"] == str(recurring.pk)
    assert everything[str(firing.pk)]["cron"] is None
    assert everything[str(one_off.pk)]["recurring_job"] is None
    assert set(listed(kind="recurring")) == {str(recurring.pk)}
    assert set(listed(kind="request")) == {str(one_off.pk), str(firing.pk)}
    assert set(listed(recurring_job=str(recurring.pk))) == {str(firing.pk)}
    response = jobs_api.get("/jobs.json", {"apikey": key, "kind": "callback"})
    assert response.status_code == 400
    assert "kind" in response.json()["error"]


def test_the_dispatcher_wakes_for_a_recurring_jobs_next_run_time(owner, clock, settings):
    settings.JOBS_DISPATCH_INTERVAL_MS = 1000
    user, _ = owner
    make_job(user, HOOK, cron="* * * * *")
    clock.set(
        at(
            18,
            36,
            59,
        )
        + timedelta(milliseconds=750)
    )
    assert pause() == pytest.approx(0.25)


def test_the_schema_describes_recurring_jobs(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    job_in = components["JobInputRequest"]["properties"]
    assert {"cron", "time_zone", "paused"} <= set(job_in)
    assert job_in["paused"]["type"] == "boolean"
    assert "five fields" in job_in["cron"]["description"]
    job_out = components["Job"]["properties"]
    assert {"kind", "recurring_job", "cron", "time_zone", "paused", "next_run_at"} <= set(job_out)
    assert job_out["next_run_at"]["nullable"] is True
    listing = {p["name"]: p for p in schema["paths"]["/jobs.json"]["get"]["parameters"]}
    assert set(listing["kind"]["schema"]["enum"]) == {"request", "recurring"}
    assert "recurring_job" in listing


def test_a_cancelled_recurring_job_stops_and_a_retry_takes_it_up_at_its_next_run_time(owner, jobs_api, run_due, clock):
    user, key = owner
    job = make_job(user, HOOK, cron="*/5 * * * *")
    services.job_cancel(job=job)
    clock.set(at(18, 40))
    assert run_due() == 0
    clock.set(at(18, 42))
    retried = answered(jobs_api.post(f"/jobs/{job.pk}/retry.json?apikey={key}"))
    assert retried["state"] == "scheduled"
    assert retried["next_run_at"] == "2030-01-31 18:45:00 +0000"
    assert firings_of(job) == []  # 18:40 is two minutes late: not replayed


def test_run_now_from_the_admin_makes_a_firing_now_and_keeps_the_run_times(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"), cron="0 * * * *")
    services.job_run_now(job=job)
    assert run_due() == 1
    [firing] = firings_of(job)
    assert (firing.at, firing.state) == (clock.now(), JobState.SUCCEEDED)
    assert Job.objects.get(pk=job.pk).next_run_at == at(19, 0)


def test_a_recurring_job_may_be_created_paused(owner, jobs_api, run_due, clock):
    _, key = owner
    body = json.dumps({"job": {"uri": HOOK, "cron": "* * * * *", "paused": True}, "apikey": key})
    job = answered(jobs_api.generic("POST", "/jobs.json", body, content_type="application/json"))
    assert (job["paused"], job["next_run_at"], job["at"]) == (True, None, "2030-01-31 18:37:00 +0000")
    clock.set(at(18, 37))
    assert run_due() == 0
    assert not Job.objects.filter(recurring_job_id=job["id"]).exists()


def test_the_admin_shows_a_recurring_job(client, admin_user, owner, clock):
    client.force_login(admin_user)
    job = make_job(owner.user, HOOK, cron="0 9 * * mon-fri", time_zone="Europe/London")
    response = client.get(reverse("admin:jobs_job_change", args=[job.pk]))
    assert response.status_code == 200
    assert b"0 9 * * mon-fri" in response.content
    assert b"Europe/London" in response.content


def test_the_next_run_time_is_read_from_its_index_on_a_table_without_statistics(owner, clock):
    """Asked at every dispatcher turn. A table that has just grown (a burst of jobs) has no statistics yet;
    the planner must still take the index rather than read the table whole."""
    user = owner.user
    Job.objects.bulk_create(
        Job(user=user, uri="https://example.org/", at=clock.now(), next_attempt_at=clock.now(), timeout=5)
        for _ in range(3000)
    )
    with CaptureQueriesContext(connection) as queries:
        recurring_next_run()
    (query,) = queries
    plan = plan_without_statistics(query["sql"])
    assert "jobs_job_recurring_due" in plan and "Seq Scan" not in plan, plan
