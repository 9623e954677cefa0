import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions.models import Subscription

from .factories import fresh, make_messageset, make_subscription

pytestmark = pytest.mark.django_db

# The body of a subscription, as the reference answered it: its place, its state, and what the API adds.
PLACE = {"identity", "version", "messageset", "lang", "schedule", "initial_sequence_number", "next_sequence_number"}
STATE = {"active", "completed", "process_status", "metadata", "created_at", "updated_at"}
FIELDS = PLACE | STATE | {"url", "id", "messageset_label"}


def test_it_creates_a_subscription_with_the_reference_defaults(writer):
    messageset = make_messageset(label="Baby messages")
    response = writer.post(
        "/api/v1/subscriptions/",
        {"identity": "abc", "messageset": messageset.pk, "lang": "eng", "schedule": messageset.default_schedule_id},
        format="json",
    )
    assert response.status_code == 201, response.data
    body = response.json()
    assert set(body) == FIELDS
    assert body["version"] == 1
    assert body["next_sequence_number"] == 1
    assert body["initial_sequence_number"] == 1
    assert body["active"] is True
    assert body["completed"] is False
    assert body["process_status"] == 0
    assert body["metadata"] is None
    assert body["messageset_label"] == "Baby messages"
    assert body["url"] == f"http://testserver/api/v1/subscriptions/{body['id']}/"
    subscription = Subscription.objects.get(pk=body["id"])
    assert subscription.created_by is not None


def test_it_names_each_missing_required_field(writer):
    response = writer.post("/api/v1/subscriptions/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"identity", "messageset", "lang", "schedule"}


def test_it_rejects_an_unknown_process_status_and_metadata_that_is_not_an_object(writer):
    messageset = make_messageset()
    response = writer.post(
        "/api/v1/subscriptions/",
        {
            "identity": "abc",
            "messageset": messageset.pk,
            "lang": "eng",
            "schedule": messageset.default_schedule_id,
            "process_status": 7,
            "metadata": [1, 2],
        },
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) == {"process_status", "metadata"}


def test_it_reads_patches_and_deletes_a_subscription(writer):
    subscription = make_subscription(make_messageset())
    url = f"/api/v1/subscriptions/{subscription.pk}/"
    assert writer.get(url).json()["identity"] == subscription.identity

    response = writer.patch(url, {"next_sequence_number": 4, "metadata": {"a": 1}}, format="json")
    assert response.status_code == 200
    assert fresh(subscription).next_sequence_number == 4
    assert fresh(subscription).metadata == {"a": 1}

    assert writer.delete(url).status_code == 204
    assert not Subscription.objects.filter(pk=subscription.pk).exists()


def test_an_unknown_or_malformed_id_is_not_found(reader):
    assert reader.get(f"/api/v1/subscriptions/{uuid.uuid4()}/").status_code == 404
    assert reader.get("/api/v1/subscriptions/not-a-uuid/").status_code == 404


def test_a_read_token_may_list_but_not_create(reader):
    assert reader.get("/api/v1/subscriptions/").status_code == 200
    assert reader.post("/api/v1/subscriptions/", {}, format="json").status_code == 403


def test_no_token_is_401(api):
    assert api().get("/api/v1/subscriptions/").status_code == 401


def test_the_list_is_newest_first_and_cursor_paged(reader, settings):
    settings.API_PAGE_SIZE = 2
    messageset = make_messageset()
    made = [make_subscription(messageset, identity=f"id-{number}") for number in range(5)]
    response = reader.get("/api/v1/subscriptions/")
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    seen = [item["identity"] for item in body["results"]]
    while body["next"]:
        assert body["next"].startswith("http://testserver/api/v1/subscriptions/")
        body = reader.get(body["next"]).json()
        seen += [item["identity"] for item in body["results"]]
    assert seen == [subscription.identity for subscription in reversed(made)]


def test_the_list_costs_the_same_queries_however_many_subscriptions(reader, django_assert_num_queries):
    messageset = make_messageset()
    other = make_messageset("other", schedule=messageset.default_schedule)
    for number in range(3):
        make_subscription(messageset, identity=f"a-{number}")
        make_subscription(other, identity=f"b-{number}")
    reader.get("/api/v1/subscriptions/")  # the token's first use writes its last-used time
    with django_assert_num_queries(2):  # the token, the page (with the sets)
        response = reader.get("/api/v1/subscriptions/")
    assert len(response.json()["results"]) == 6


def _identities(client, query: str) -> set[str]:
    response = client.get(f"/api/v1/subscriptions/?{query}")
    assert response.status_code == 200, response.json()
    return {item["identity"] for item in response.json()["results"]}


def test_every_field_filters_by_exact_match(reader):
    baby = make_messageset("baby")
    other_schedule = make_messageset("momconnect-other").default_schedule
    child = make_messageset("child", schedule=other_schedule)
    first = make_subscription(baby, identity="first", metadata={"source": "clinic"})
    make_subscription(
        child,
        identity="second",
        lang="zul",
        next_sequence_number=3,
        initial_sequence_number=2,
        version=2,
        active=False,
        completed=True,
        process_status=2,
    )
    assert _identities(reader, "identity=first") == {"first"}
    assert _identities(reader, f"id={first.pk}") == {"first"}
    assert _identities(reader, f"messageset={child.pk}") == {"second"}
    assert _identities(reader, f"schedule={other_schedule.pk}") == {"second"}
    assert _identities(reader, "lang=zul") == {"second"}
    assert _identities(reader, "version=2") == {"second"}
    assert _identities(reader, "next_sequence_number=3") == {"second"}
    assert _identities(reader, "initial_sequence_number=2") == {"second"}
    assert _identities(reader, "process_status=2") == {"second"}
    assert _identities(reader, 'metadata={"source": "clinic"}') == {"first"}
    assert _identities(reader, f"created_by={first.created_by_id or 0}") == set()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("active=true", {"on"}),
        ("active=True", {"on"}),
        ("active=TRUE", {"on"}),
        ("active=1", {"on"}),
        ("active=false", {"off"}),
        ("active=False", {"off"}),
        ("active=0", {"off"}),
        ("completed=FALSE", {"on", "off"}),
    ],
)
def test_booleans_filter_in_any_case(reader, query, expected):
    messageset = make_messageset()
    make_subscription(messageset, identity="on")
    make_subscription(messageset, identity="off", active=False)
    assert _identities(reader, query) == expected


def test_a_boolean_that_is_not_one_is_a_400_naming_the_field(reader):
    response = reader.get("/api/v1/subscriptions/?active=maybe")
    assert response.status_code == 400
    assert "active" in response.json()


def test_it_filters_by_creation_time(reader):
    messageset = make_messageset()
    old = make_subscription(messageset, identity="old")
    Subscription.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    make_subscription(messageset, identity="new")
    boundary = (timezone.now() - timedelta(days=5)).isoformat().replace("+00:00", "Z")
    assert _identities(reader, f"created_after={boundary}") == {"new"}
    assert _identities(reader, f"created_before={boundary}") == {"old"}


def test_it_filters_by_metadata_keys_and_set_name(reader):
    baby = make_messageset("momconnect_prebirth")
    other = make_messageset("whatsapp_child", schedule=baby.default_schedule)
    make_subscription(baby, identity="with-key", metadata={"prepend_next_delivery": None})
    make_subscription(other, identity="without-key", metadata={"x": 1})
    make_subscription(other, identity="no-metadata")
    assert _identities(reader, "metadata_has_key=prepend_next_delivery") == {"with-key"}
    assert _identities(reader, "metadata_not_has_key=prepend_next_delivery") == {"without-key", "no-metadata"}
    assert _identities(reader, "messageset_contains=prebirth") == {"with-key"}
    assert _identities(reader, "messageset_contains=whatsapp") == {"without-key", "no-metadata"}
