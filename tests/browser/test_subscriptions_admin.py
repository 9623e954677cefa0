"""Operators' work in the admin: find a subscription and resend to it, requeue a failed send.

Tasks run in the web request (eager Celery) and the message sender is a local HTTP server,
so what the page says is checked against what was really sent and recorded.
"""

import json

import pytest

from subscriptions import services
from subscriptions.models import ResendRequest, SubscriptionSendFailure
from tests.subscriptions.factories import MONDAY_8AM, fresh, make_messages, make_messageset, make_subscription

from .helpers import admin_messages, expect, result_rows, run_action, screenshot

pytestmark = pytest.mark.usefixtures("eager_celery")

ADMIN = "/admin/subscriptions"
MOTHER = "7c1b5a64-55f4-4b07-9a8b-1f0e6a6b3a11"
NEIGHBOUR = "0f6e2d3c-8a43-4e0f-b1f1-5d2c9e8a7b22"


def sent(sender) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in sender.log if request.path == "/outbound/"]


def test_a_staff_member_finds_a_subscription_by_identity_and_resends_to_it(admin_page, sender):
    page = admin_page
    messageset = make_messageset("pregnancy")
    make_messages(messageset, 3)
    subscription = make_subscription(messageset, identity=MOTHER, next_sequence_number=3)  # was sent message 2
    make_subscription(messageset, identity=NEIGHBOUR)

    page.goto(f"{ADMIN}/subscription/")
    expect(result_rows(page)).to_have_count(2)
    page.locator("#searchbar").fill(MOTHER)
    page.locator("#searchbar").press("Enter")
    expect(result_rows(page)).to_have_count(1)
    expect(result_rows(page)).to_contain_text(MOTHER)
    screenshot(page, "06-subscription-found")

    run_action(page, "Resend the current message", MOTHER)

    expect(admin_messages(page)).to_have_text("Queued the resend of 1 subscription(s)' current message.")
    screenshot(page, "06-resent")
    assert [(payload["content"], payload["resend"]) for payload in sent(sender)] == [("Message 2 in eng", "true")]
    resend_request = ResendRequest.objects.get()
    assert resend_request.subscription_id == subscription.pk
    assert resend_request.message.sequence_number == 2 and resend_request.outbound is not None
    assert fresh(subscription).next_sequence_number == 3


def test_a_staff_member_requeues_a_failed_send(admin_page, sender, settings):
    page = admin_page
    messageset = make_messageset("pregnancy")
    make_messages(messageset, 3)
    subscription = make_subscription(messageset, identity=MOTHER)
    sender_url, settings.MESSAGE_SENDER_URL = settings.MESSAGE_SENDER_URL, None
    services.schedule_send(schedule_id=messageset.default_schedule_id, at=MONDAY_8AM)  # no sender: it fails
    failure = SubscriptionSendFailure.objects.get()
    settings.MESSAGE_SENDER_URL = sender_url

    page.goto(f"{ADMIN}/subscriptionsendfailure/")
    expect(result_rows(page)).to_have_count(1)
    expect(result_rows(page)).to_contain_text("MESSAGE_SENDER_URL is not set")
    screenshot(page, "07-send-failure-listed")

    run_action(page, "Requeue (send again)", failure.reason)

    expect(admin_messages(page)).to_have_text("Queued 1 failure(s) to be sent again.")
    expect(result_rows(page)).to_have_count(0)
    expect(page.locator("#changelist")).to_contain_text("0 subscription send failures")
    screenshot(page, "07-failure-requeued")
    assert [payload["content"] for payload in sent(sender)] == ["Message 1 in eng"]
    assert not SubscriptionSendFailure.objects.exists()
    assert fresh(subscription).next_sequence_number == 2
