"""Where a subscription should be by now, behind subscriptions, and daily send estimates."""

from datetime import UTC, date, datetime

import pytest
from django.contrib.auth.models import Permission

from subscriptions import services
from subscriptions.models import BehindSubscription, EstimatedSend, Subscription
from subscriptions.services.lifecycle import SetSizes

from .factories import make_messages, make_messageset, make_schedule, make_subscription

pytestmark = pytest.mark.django_db

CREATED = datetime(2016, 11, 1, tzinfo=UTC)


def _created_on(subscription, moment: datetime) -> Subscription:
    Subscription.objects.filter(pk=subscription.pk).update(created_at=moment)
    return Subscription.objects.select_related("schedule", "messageset").get(pk=subscription.pk)


@pytest.fixture
def tuesdays_and_thursdays():
    """A set of 3 messages on `0 8 * * 2,4` and a subscription to it created 2016-11-01."""
    schedule = make_schedule(minute="0", hour="8", day_of_week="2,4")
    messageset = make_messageset(schedule=schedule)
    make_messages(messageset, 3)
    return _created_on(make_subscription(messageset), CREATED)


def test_the_reference_lifecycle_example(tuesdays_and_thursdays):
    subscription = tuesdays_and_thursdays
    assert services.subscription_expected_next(
        subscription=subscription, at=datetime(2016, 11, 7, 22, tzinfo=UTC), set_size=3
    ) == (3, False)
    assert services.subscription_expected_next(
        subscription=subscription, at=datetime(2016, 11, 10, tzinfo=UTC), set_size=3
    ) == (3, True)


def test_the_initial_sequence_number_counts_as_already_sent(tuesdays_and_thursdays):
    subscription = tuesdays_and_thursdays
    subscription.initial_sequence_number = 2
    assert services.subscription_expected_next(
        subscription=subscription, at=datetime(2016, 11, 2, tzinfo=UTC), set_size=3
    ) == (3, False)


def test_a_follow_on_set_starts_a_minute_after_the_last_run_of_the_previous_one(tuesdays_and_thursdays):
    subscription = tuesdays_and_thursdays
    daily = make_schedule(minute="0", hour="9", day_of_week="*")
    follow_on = make_messageset("follow-on", schedule=daily)
    make_messages(follow_on, 10)
    subscription.messageset.next_set = follow_on
    subscription.messageset.save()
    # The set's 3 runs end on Tuesday 2016-11-08 08:00; the daily 09:00 runs then go on from 08:01.
    place = services.subscription_expected_place(
        subscription=subscription, at=datetime(2016, 11, 10, 12, tzinfo=UTC), sizes=SetSizes()
    )
    assert (place.messageset, place.next_sequence_number, place.completed) == (follow_on, 4, False)


def test_find_behind_records_a_subscription_that_is_behind(tuesdays_and_thursdays):
    subscription = tuesdays_and_thursdays
    on_time = _created_on(make_subscription(subscription.messageset, identity="on-time"), CREATED)
    Subscription.objects.filter(pk=on_time.pk).update(next_sequence_number=3)

    found = services.behind_subscriptions_find(
        subscription_ids=[subscription.pk, on_time.pk], at=datetime(2016, 11, 7, 22, tzinfo=UTC)
    )

    assert [(behind.subscription_id, behind.messages_behind) for behind in found] == [(subscription.pk, 2)]
    behind = BehindSubscription.objects.get()
    assert (behind.current_sequence_number, behind.expected_sequence_number) == (1, 3)
    assert behind.current_messageset_id == behind.expected_messageset_id == subscription.messageset_id


def test_behind_subscriptions_need_the_view_permission_to_list(make_token, api, tuesdays_and_thursdays):
    token, raw = make_token("messaging:read")
    client = api(raw)
    assert client.get("/api/v1/behind-subscriptions/").status_code == 403

    token.user.user_permissions.add(Permission.objects.get(codename="view_behindsubscription"))
    services.behind_subscriptions_find(
        subscription_ids=[tuesdays_and_thursdays.pk], at=datetime(2016, 11, 7, 22, tzinfo=UTC)
    )
    response = client.get("/api/v1/behind-subscriptions/")
    assert response.status_code == 200
    (item,) = response.json()["results"]
    assert item["messages_behind"] == 2
    assert item["current_messageset_name"] == "baby"
    assert item["subscription"].endswith(f"/api/v1/subscriptions/{tuesdays_and_thursdays.pk}/")
    assert client.post("/api/v1/behind-subscriptions/find_behind_subscriptions/").status_code == 403


def test_finding_behind_subscriptions_needs_its_own_permission(make_token, api, run_queued):
    token, raw = make_token("messaging:write")
    client = api(raw)
    assert client.post("/api/v1/behind-subscriptions/find_behind_subscriptions/").status_code == 403

    token.user.user_permissions.add(Permission.objects.get(codename="can_find_behind_subscriptions"))
    with run_queued():
        response = client.post("/api/v1/behind-subscriptions/find_behind_subscriptions/")
    assert response.status_code == 202
    assert response.json()["accepted"] is True
    assert response.json()["task_id"]
    assert client.get("/api/v1/behind-subscriptions/").status_code == 403


def test_the_behind_list_costs_the_same_queries_however_many(make_token, api, django_assert_num_queries):
    token, raw = make_token("messaging:read")
    token.user.user_permissions.add(Permission.objects.get(codename="view_behindsubscription"))
    client = api(raw)
    messageset = make_messageset()
    for number in range(3):
        subscription = make_subscription(messageset, identity=f"id-{number}")
        BehindSubscription.objects.create(
            subscription=subscription,
            messages_behind=1,
            current_messageset=messageset,
            current_sequence_number=1,
            expected_messageset=messageset,
            expected_sequence_number=2,
        )
    client.get("/api/v1/behind-subscriptions/")
    with django_assert_num_queries(4):  # the token, the user's permissions (and groups'), the page
        assert len(client.get("/api/v1/behind-subscriptions/").json()["results"]) == 3


def test_daily_estimates_count_ready_subscriptions_on_schedules_that_fire_that_day():
    monday = make_schedule(minute="0", hour="8", day_of_week="1")
    twice_on_mondays = make_schedule(minute="0", hour="8,16", day_of_week="1")
    tuesday = make_schedule(minute="0", hour="8", day_of_week="2")
    baby = make_messageset("baby", schedule=monday)
    make_subscription(baby, identity="a", schedule=monday)
    make_subscription(baby, identity="a", schedule=twice_on_mondays)
    make_subscription(baby, identity="b", schedule=tuesday)
    make_subscription(baby, identity="c", schedule=monday, active=False)

    (estimate,) = services.estimated_sends_calculate(day=date(2030, 1, 7))

    assert (estimate.messageset, estimate.estimate_subscriptions, estimate.estimate_identities) == (baby, 3, 1)
    services.estimated_sends_calculate(day=date(2030, 1, 7))
    assert EstimatedSend.objects.count() == 1
