import pytest
from werkzeug import Response

from subscriptions.models import ResendRequest, SendRun, Subscription, SubscriptionSendFailure

from .factories import fresh, make_messages, make_messageset, make_schedule, make_subscription

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/subscriptions/subscription/"
FAILURES = "/admin/subscriptions/subscriptionsendfailure/"


def test_subscriptions_are_searchable_by_identity_and_filterable(admin_client):
    messageset = make_messageset()
    other_schedule = make_schedule(hour="9")
    make_subscription(messageset, identity="find-me")
    make_subscription(messageset, identity="someone-else", schedule=other_schedule, process_status=-1)

    found = admin_client.get(CHANGELIST, {"q": "find-me"})
    assert found.status_code == 200
    assert b"find-me" in found.content and b"someone-else" not in found.content

    by_schedule = admin_client.get(CHANGELIST, {"schedule__id__exact": other_schedule.pk})
    assert b"someone-else" in by_schedule.content and b"find-me" not in by_schedule.content
    by_status = admin_client.get(CHANGELIST, {"process_status__exact": -1})
    assert b"someone-else" in by_status.content and b"find-me" not in by_status.content
    by_set = admin_client.get(CHANGELIST, {"messageset__id__exact": messageset.pk})
    assert b"find-me" in by_set.content


def test_the_send_next_now_action_sends_and_advances(admin_client, sender, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    with run_queued():
        response = admin_client.post(
            CHANGELIST, {"action": "send_next_now", "_selected_action": [str(subscription.pk)]}, follow=True
        )
    assert response.status_code == 200
    assert [payload["content"] for payload in sender.payloads()] == ["Message 1 in eng"]
    assert fresh(subscription).next_sequence_number == 2


def test_the_resend_action_resends_the_current_message(admin_client, sender, run_queued):
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset, next_sequence_number=2)
    with run_queued():
        admin_client.post(CHANGELIST, {"action": "resend", "_selected_action": [str(subscription.pk)]})
    assert [payload["resend"] for payload in sender.payloads()] == ["true"]
    assert ResendRequest.objects.filter(subscription=subscription).exists()
    assert fresh(subscription).next_sequence_number == 2


def test_the_deactivate_action_deactivates(admin_client):
    subscription = make_subscription(make_messageset())
    admin_client.post(CHANGELIST, {"action": "deactivate", "_selected_action": [str(subscription.pk)]})
    assert fresh(subscription).active is False


@pytest.fixture
def failed(sender, fire):
    """A subscription whose first send failed (the sender answered 400); the sender now accepts."""
    messageset = make_messageset()
    make_messages(messageset, 3)
    subscription = make_subscription(messageset)
    sender.answer(lambda request: Response("no", status=400))
    fire(messageset.default_schedule)
    sender.answer(lambda request: Response('{"id": null}', status=201))
    return subscription


def test_failures_are_listed_and_requeued_from_the_admin(admin_client, failed, run_queued):
    listing = admin_client.get(FAILURES)
    assert listing.status_code == 200
    assert b"The message sender answered HTTP 400" in listing.content

    with run_queued():
        admin_client.post(f"{FAILURES}requeue-all/")
    assert fresh(failed).next_sequence_number == 2
    assert not SubscriptionSendFailure.objects.exists()


def test_a_subscription_added_and_changed_in_the_admin_records_who_did_it(admin_client, admin_user):
    messageset = make_messageset()
    fields = {
        "identity": "added-by-hand",
        "version": 1,
        "messageset": messageset.pk,
        "initial_sequence_number": 1,
        "next_sequence_number": 1,
        "lang": "eng",
        "active": "on",
        "schedule": messageset.default_schedule_id,
        "process_status": 0,
        "metadata": "{}",
    }
    assert admin_client.post(f"{CHANGELIST}add/", fields).status_code == 302
    subscription = Subscription.objects.get()
    assert (subscription.identity, subscription.created_by, subscription.updated_by) == (
        "added-by-hand",
        admin_user,
        admin_user,
    )

    editor = type(admin_user).objects.create_superuser("editor", "editor@example.org", "secret")
    admin_client.force_login(editor)
    assert admin_client.post(f"{CHANGELIST}{subscription.pk}/change/", fields | {"lang": "zul"}).status_code == 302
    changed = fresh(subscription)
    assert (changed.lang, changed.created_by, changed.updated_by) == ("zul", admin_user, editor)


def test_the_requeue_action_sends_the_selected_failures_again(admin_client, failed, run_queued):
    failure = SubscriptionSendFailure.objects.get()
    with run_queued():
        admin_client.post(FAILURES, {"action": "requeue", "_selected_action": [str(failure.pk)]})
    assert fresh(failed).next_sequence_number == 2
    assert not SubscriptionSendFailure.objects.exists()


def test_a_send_run_page_shows_its_batches_read_only(admin_client, failed):
    run = SendRun.objects.get()
    response = admin_client.get(f"/admin/subscriptions/sendrun/{run.pk}/change/")
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0]
    assert [batch.failed for batch in run.batches.all()] == [1]
    assert len(formset.formset.forms) == 1
    assert not formset.has_add_permission and not formset.formset.can_delete
    assert set(formset.readonly_fields) == {"id", "size", "queued_at", "done_at", "sent", "failed", "skipped"}
