import pytest

from subscriptions.models import Subscription

from .factories import make_messageset

pytestmark = pytest.mark.django_db


def _data(set_, **fields) -> dict:
    return {
        "identity": "7646b7bc-b511-4965-a90b-e1145e398703",
        "messageset": set_.pk,
        "lang": "eng",
        "schedule": set_.default_schedule_id,
        **fields,
    }


def test_the_hub_webhook_creates_a_subscription_with_empty_metadata(writer):
    messageset = make_messageset()
    response = writer.post(
        "/api/v1/subscriptions/request",
        {"hook": {"id": 1, "event": "registration"}, "data": _data(messageset)},
        format="json",
    )
    assert response.status_code == 201
    assert response.json() == {"accepted": True}
    subscription = Subscription.objects.get()
    assert subscription.metadata == {}
    assert subscription.next_sequence_number == 1
    assert subscription.initial_sequence_number == 1


def test_the_initial_sequence_number_defaults_to_the_next_one(writer):
    messageset = make_messageset()
    response = writer.post(
        "/api/v1/subscriptions/request/", {"data": _data(messageset, next_sequence_number=7)}, format="json"
    )
    assert response.status_code == 201
    subscription = Subscription.objects.get()
    assert (subscription.next_sequence_number, subscription.initial_sequence_number) == (7, 7)


def test_given_metadata_and_initial_sequence_number_are_kept(writer):
    messageset = make_messageset()
    data = _data(messageset, next_sequence_number=7, initial_sequence_number=2, metadata={"a": "b"})
    assert writer.post("/api/v1/subscriptions/request", {"data": data}, format="json").status_code == 201
    subscription = Subscription.objects.get()
    assert (subscription.initial_sequence_number, subscription.metadata) == (2, {"a": "b"})


def test_a_webhook_without_data_is_the_reference_400(writer):
    response = writer.post("/api/v1/subscriptions/request", {"hook": {}}, format="json")
    assert response.status_code == 400
    assert response.json() == {"data": ["This field is required."]}
    assert not Subscription.objects.exists()


def test_invalid_data_is_a_400_with_the_field_errors(writer):
    messageset = make_messageset()
    response = writer.post(
        "/api/v1/subscriptions/request", {"data": _data(messageset, messageset=9999, lang="")}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"messageset", "lang"}
    assert body["lang"] == ["This field may not be blank."]
    assert not Subscription.objects.exists()


def test_data_that_is_not_an_object_is_a_400(writer):
    response = writer.post("/api/v1/subscriptions/request", {"data": "subscription"}, format="json")
    assert response.status_code == 400
    assert "data" in response.json()


def test_the_webhook_needs_a_write_token(reader):
    assert reader.post("/api/v1/subscriptions/request", {"data": {}}, format="json").status_code == 403
