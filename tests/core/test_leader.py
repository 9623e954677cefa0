"""Many schedulers, one leader: the beat lease (takeover, fencing) and once-per-tick runs."""

import datetime
import threading
import uuid
import zoneinfo

import pytest
from celery import shared_task
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from config.celery import app as celery_app
from core.beat import STANDBY_SECONDS, DatabaseScheduler
from core.leader import MARGIN_SECONDS, Lease, keep_refreshing
from core.models import BeatTick, LeaderLease
from core.ticks import ENTRY_HEADER, TICK_HEADER, TOKEN_HEADER, claim_tick, entry_tick
from harness.waiting import wait_until
from tests.worker import running_worker

pytestmark = pytest.mark.django_db(transaction=True)

UTC = datetime.UTC
RUNS: list[dict] = []  # what the test task saw, in the order it ran


@shared_task(name="tests.record_run", bind=True)
def record_run(self, label: str) -> None:
    RUNS.append({"label": label, "task_id": self.request.id, "tick": self.request.get(TICK_HEADER)})


@pytest.fixture(autouse=True)
def _no_runs():
    RUNS.clear()
    yield
    RUNS.clear()


def lease(name="beat", seconds=2.0) -> Lease:
    return Lease(name, seconds=seconds)


def test_one_process_leads_and_the_others_stand_by():
    first, second = lease(), lease()
    assert first.refresh() and first.held()
    assert not second.refresh() and not second.held()
    assert first.refresh()  # renewing keeps the token
    row = LeaderLease.objects.get(name="beat")
    assert (row.holder, row.token) == (first.holder, first.token) == (first.holder, 1)


def test_a_standby_takes_over_a_lapsed_lease_with_a_higher_token():
    old, new = lease(), lease()
    assert old.refresh()
    # The old leader stops renewing (killed, paused, cut off): once the lease lapses by the
    # database's clock, the standby takes it.
    wait_until(new.refresh, what="the standby to take the lapsed lease", timeout=10, every=0.1)
    assert new.token == old.token + 1
    assert not old.held()  # its own count ran out before the database's
    assert not old.refresh()  # and coming back, it cannot take it again
    assert new.held()


def test_a_holder_counts_its_lead_as_ending_before_the_database_does():
    holder = lease(seconds=3)
    assert holder.refresh()
    expires_at = LeaderLease.objects.get(name="beat").expires_at
    wait_until(lambda: not holder.held(), what="the holder's lead to run out", timeout=10, every=0.05)
    # When the holder stops counting itself leader, nobody can have taken the lease yet.
    assert not lease().refresh()
    assert LeaderLease.objects.get(name="beat").expires_at == expires_at
    assert MARGIN_SECONDS < 3


def test_a_released_lease_is_taken_at_once():
    old, new = lease(seconds=60), lease(seconds=60)
    assert old.refresh()
    old.release()
    assert not old.held()
    assert new.refresh() and new.token == 2


def test_leases_of_different_names_are_independent():
    assert lease("beat").refresh()
    assert lease("other").refresh()


def test_the_refreshing_thread_holds_the_lease_and_gives_it_up_when_stopped():
    holder, stop = lease(seconds=3), threading.Event()
    thread = threading.Thread(target=keep_refreshing, args=(holder, stop), kwargs={"every": 0.2})
    thread.start()
    try:
        wait_until(holder.held, what="the thread to take the lease", timeout=10, every=0.05)
        assert not lease(seconds=3).refresh()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not holder.held()
    assert lease(seconds=3).refresh()  # released: no need to wait for it to lapse


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def periodic(**schedule) -> PeriodicTask:
    return PeriodicTask.objects.create(name=f"probe {uuid.uuid4().hex[:6]}", task="tests.record_run", **schedule)


def test_a_cron_run_is_for_its_scheduled_time_whenever_it_is_fired():
    cron = CrontabSchedule.objects.create(minute="0", hour="8", timezone=zoneinfo.ZoneInfo("Africa/Johannesburg"))
    task = periodic(crontab=cron)
    eight = at("2026-11-30T08:00:00+02:00")
    assert entry_tick(task, at("2026-11-30T06:00:00.2+00:00")) == eight  # on time
    assert entry_tick(task, at("2026-11-30T05:59:59.5+00:00")) == eight  # beat woke a little early
    assert entry_tick(task, at("2026-11-30T06:00:14+00:00")) == eight  # fired again by a new leader
    assert entry_tick(task, at("2026-12-01T05:59:00+00:00")) == eight  # the next day, before its time
    assert entry_tick(task, at("2026-12-01T06:00:00+00:00")) == eight + datetime.timedelta(days=1)


def test_both_day_fields_of_a_cron_must_match_as_in_celery():
    cron = CrontabSchedule.objects.create(minute="0", hour="0", day_of_month="1", day_of_week="1")
    task = periodic(crontab=cron)  # midnight on a Monday the 1st
    assert entry_tick(task, at("2026-11-30T12:00:00+00:00")) == at("2026-06-01T00:00:00+00:00")


def test_an_interval_run_is_for_its_slot():
    interval = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    task = periodic(interval=interval)
    assert entry_tick(task, at("2026-11-30T08:00:03+00:00")) == at("2026-11-30T08:00:00+00:00")
    assert entry_tick(task, at("2026-11-30T08:00:12+00:00")) == at("2026-11-30T08:00:10+00:00")


def test_the_first_message_of_a_tick_claims_it_and_keeps_it_when_delivered_again():
    tick = at("2026-11-30T08:00:00+00:00")
    assert claim_tick(entry="estimate", tick=tick, task_id="a", token=1)
    assert not claim_tick(entry="estimate", tick=tick, task_id="b", token=2)  # another leader's
    assert claim_tick(entry="estimate", tick=tick, task_id="a", token=1)  # its worker died: run again
    assert claim_tick(entry="estimate", tick=tick + datetime.timedelta(days=1), task_id="c", token=2)
    assert BeatTick.objects.get(entry="estimate", tick=tick).task_id == "a"


def send_as_beat(label: str, *, entry: str, tick: str, token: int) -> str:
    headers = {ENTRY_HEADER: entry, TICK_HEADER: tick, TOKEN_HEADER: token}
    return record_run.apply_async((label,), headers=headers).id


def test_a_worker_runs_one_message_per_tick_whichever_leader_sent_it():
    with running_worker():
        send_as_beat("old leader", entry="probe", tick="2026-11-30T08:00:00+00:00", token=1)
        send_as_beat("new leader, same tick", entry="probe", tick="2026-11-30T08:00:00+00:00", token=2)
        send_as_beat("new leader, next tick", entry="probe", tick="2026-11-30T08:01:00+00:00", token=2)
        record_run.delay("not from beat")
        wait_until(lambda: len(RUNS) == 3 and BeatTick.objects.count() == 2, what="the runs", timeout=30)
        record_run.delay("last")  # the solo worker runs in order: the dropped one came before
        wait_until(lambda: RUNS[-1]["label"] == "last", what="the last run", timeout=30)
    assert [run["label"] for run in RUNS] == ["old leader", "new leader, next tick", "not from beat", "last"]


def test_only_the_leading_scheduler_sends_and_each_message_carries_its_tick():
    interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    periodic(interval=interval, args='["from beat"]')
    leader_lease, standby_lease = lease(seconds=60), lease(seconds=60)
    assert leader_lease.refresh() and not standby_lease.refresh()
    leader = DatabaseScheduler(app=celery_app, lease=leader_lease)
    standby = DatabaseScheduler(app=celery_app, lease=standby_lease)
    with running_worker():
        assert standby.tick() == STANDBY_SECONDS

        def leader_sent() -> bool:
            leader.tick()
            return bool(RUNS)

        wait_until(leader_sent, what="the leader to send", timeout=30, every=0.1)
        token = leader_lease.token
        leader_lease.release()  # the leader stops leading: from now on it sends nothing
        for _ in range(3):
            assert leader.tick() == STANDBY_SECONDS
        record_run.delay("last")  # the solo worker runs in order: all beat sent came before
        wait_until(lambda: RUNS[-1]["label"] == "last", what="the last run", timeout=30)
    from_beat = RUNS[:-1]
    assert from_beat and {run["label"] for run in from_beat} == {"from beat"}
    assert all(run["tick"] is not None for run in from_beat)
    assert BeatTick.objects.filter(token=token).count() == len(from_beat)
    assert standby.tick() == STANDBY_SECONDS


def test_the_admin_shows_who_leads_and_changes_nothing(admin_client):
    holder = lease(seconds=60)
    assert holder.refresh()
    page = admin_client.get("/admin/core/leaderlease/")
    assert page.status_code == 200
    assert holder.holder in page.content.decode()
    row = LeaderLease.objects.get(name="beat")
    assert admin_client.get("/admin/core/leaderlease/add/").status_code == 403
    assert admin_client.post(f"/admin/core/leaderlease/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LeaderLease.objects.get(pk=row.pk).holder == holder.holder


def test_a_standby_taking_the_lead_while_the_database_fails_tries_again(monkeypatch):
    from django.db import OperationalError
    from django_celery_beat import schedulers

    from core.beat import RETRY_SECONDS

    interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    periodic(interval=interval, args='["after the failure"]')
    holder = lease(seconds=60)
    scheduler = DatabaseScheduler(app=celery_app, lease=holder)
    assert scheduler.tick() == STANDBY_SECONDS
    assert holder.refresh()
    real_read = schedulers.DatabaseScheduler.all_as_schedule

    def unreachable(self):
        raise OperationalError("the database system is shutting down")

    monkeypatch.setattr(schedulers.DatabaseScheduler, "all_as_schedule", unreachable)
    assert scheduler.tick() == RETRY_SECONDS  # not an exception, which would end beat
    monkeypatch.setattr(schedulers.DatabaseScheduler, "all_as_schedule", real_read)
    with running_worker():

        def sent() -> bool:
            scheduler.tick()
            return bool(RUNS)

        wait_until(sent, what="the new leader to send", timeout=30, every=0.1)
    assert RUNS[0]["label"] == "after the failure"
