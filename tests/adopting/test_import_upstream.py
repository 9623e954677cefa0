"""`manage.py import_upstream` against a real upstream-shaped database: what it copies, a second run,
an interrupted run, a dry run, and the clients' tokens afterwards."""

import inspect
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from accounts.models import ApiToken, User, token_digest
from adopting.services import upstream_import
from contentstore.models import BinaryContent, Message, MessageSet, Schedule
from contentstore.services import schedule_create
from subscriptions.models import (
    BehindSubscription,
    EstimatedSend,
    ResendRequest,
    Subscription,
    SubscriptionSendFailure,
)

from .conftest import (
    AUDIO_BYTES,
    CREATED,
    EXTRA_SUBSCRIPTIONS,
    HUB_TOKEN,
    RETIRED_TOKEN,
    SCHEDULER_TOKEN,
    SUBSCRIPTIONS,
    ZULU_TEXT,
)

pytestmark = pytest.mark.django_db(transaction=True)

SUBSCRIPTION_COLUMNS = (
    "id, identity, version, messageset_id, initial_sequence_number, next_sequence_number, lang, active, "
    "completed, schedule_id, process_status, metadata::text, created_at, updated_at"
)
COUNTED = [Schedule, MessageSet, BinaryContent, Message, Subscription, SubscriptionSendFailure, EstimatedSend]
COUNTED += [ResendRequest, BehindSubscription, User, ApiToken, PeriodicTask]


def run_import(upstream, *options: str, stderr: StringIO | None = None) -> str:
    out = StringIO()
    call_command(
        "import_upstream",
        "--from",
        upstream.url,
        "--media-root",
        str(upstream.media_root),
        *options,
        stdout=out,
        stderr=stderr or StringIO(),
    )
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


def local_subscriptions() -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions_subscription ORDER BY id")  # noqa: S608
        return cursor.fetchall()


def test_it_imports_every_record_keeping_the_ids_clients_hold(upstream, settings):
    progress = StringIO()
    output = run_import(upstream, stderr=progress)

    assert "subscriptions_subscription: 11/11 read, 11 written, 0 skipped, " in progress.getvalue()
    assert " rows/s" in progress.getvalue()

    first, second, invalid = Schedule.objects.get(pk=1), Schedule.objects.get(pk=2), Schedule.objects.filter(pk=7)
    assert first.cron_string == "0 8 * * 1,3"
    assert second.cron_string == "*/30 8-17 * * *"
    assert not invalid.exists()
    assert "contentstore_schedule: 1 skipped: invalid cron field: '61' is not a valid minute" in output
    task = first.periodic_task
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "8", "1,3")
    assert task.enabled

    prebirth, postbirth, voice = (MessageSet.objects.get(pk=pk) for pk in (1, 2, 3))
    assert (prebirth.next_set_id, postbirth.next_set_id, voice.next_set_id) == (2, 2, None)
    assert (postbirth.channel, postbirth.notes, voice.content_type) == ("WHATSAPP", "loops on itself", "audio")

    assert Message.objects.get(pk=2).text_content == ZULU_TEXT
    assert Message.objects.get(pk=2).metadata == {"note": "ñé"}
    assert Message.objects.get(pk=3).text_content is None
    assert Message.objects.get(pk=3).metadata == {}
    assert "contentstore_message: 1 message without text or file" in output

    present, missing = BinaryContent.objects.get(pk=1), BinaryContent.objects.get(pk=2)
    assert present.content.read() == AUDIO_BYTES
    assert missing.content.name == "audio/week2.mp3"
    assert Message.objects.get(pk=6).binary_content_id == 2
    assert "binary content 2: audio/week2.mp3 is missing" in output
    assert "binary content 3: audio/page.mp3: 'page.mp3' is named as audio/mpeg but its content is" in output
    assert "binary content 4: ../outside.mp3 is outside" in output
    assert not BinaryContent.objects.get(pk=3).content.storage.exists("audio/page.mp3")
    assert sorted(path.name for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()) == ["week1.mp3"]

    assert local_subscriptions() == upstream.execute(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions_subscription ORDER BY id"  # noqa: S608
    )
    assert sorted(Subscription.objects.values_list("process_status", flat=True).distinct()) == [-1, 0, 1, 2, 5]
    hub = User.objects.get(username="hub")
    assert Subscription.objects.get(pk=SUBSCRIPTIONS[0]).created_by == hub
    assert SubscriptionSendFailure.objects.get(pk=4).subscription_id == SUBSCRIPTIONS[0]
    assert EstimatedSend.objects.get(pk=9).estimate_identities == 4
    assert ResendRequest.objects.get(pk=3).message_id == 1
    assert BehindSubscription.objects.get(pk=2).expected_sequence_number == 4

    token = ApiToken.objects.get(digest=token_digest(HUB_TOKEN))
    assert (token.user, token.prefix, token.created_at) == (hub, HUB_TOKEN[:8], CREATED)
    assert token.scope_set.allows("messaging", "write")
    assert not token.scope_set.allows("messaging", "admin")  # upstream's user/token was for staff only
    scheduler = ApiToken.objects.get(digest=token_digest(SCHEDULER_TOKEN))
    assert scheduler.scope_set.allows("messaging", "admin")
    assert hub.grants == [{"face": "messaging", "role": "write"}]
    assert f"{SCHEDULER_TOKEN[:8]}... of scheduler <scheduler@example.org>: messaging:admin; imported" in output
    assert f"{RETIRED_TOKEN[:8]}... of old <old@example.org>" in output
    assert "its user is inactive" in output
    assert HUB_TOKEN not in output

    assert schedule_create(minute="5").pk == 3  # the sequences are past the imported ids (7 was not imported)
    assert Message.objects.create(messageset=prebirth, sequence_number=9, lang="eng", text_content="x").pk == 7


def test_a_second_import_writes_nothing(upstream):
    run_import(upstream)
    before = counts()

    output = run_import(upstream)

    assert counts() == before
    rows = [line.split() for line in output.splitlines() if line.startswith(("contentstore_", "subscriptions_"))]
    written = {row[0]: int(row[2]) for row in rows if len(row) == 6}
    assert written and set(written.values()) == {0}
    assert "subscriptions_subscription: 11 skipped: already imported, unchanged" in output
    assert "periodic task made or corrected" not in output


def test_an_interrupted_import_continues_where_it_stopped(upstream):
    batches = []

    def lose_upstream_after_two_batches(report) -> None:
        if report.name == "subscriptions_subscription" and report.read < report.total:
            batches.append(report.read)
            if len(batches) == 2:
                upstream.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )

    with pytest.raises(psycopg.OperationalError):
        upstream_import(
            url=upstream.url, media_root=upstream.media_root, batch_size=2, progress=lose_upstream_after_two_batches
        )
    assert Subscription.objects.count() == 4  # the two batches committed
    assert not SubscriptionSendFailure.objects.exists()
    upstream.execute("UPDATE subscriptions_subscription SET next_sequence_number = 3 WHERE id = %s", [SUBSCRIPTIONS[0]])

    output = run_import(upstream, "--batch-size", "2")

    assert Subscription.objects.count() == len(SUBSCRIPTIONS) + len(EXTRA_SUBSCRIPTIONS)
    assert Subscription.objects.get(pk=SUBSCRIPTIONS[0]).next_sequence_number == 3  # changed since: brought
    assert SubscriptionSendFailure.objects.count() == 1
    assert "subscriptions_subscription: 3 skipped: already imported, unchanged" in output
    assert local_subscriptions() == upstream.execute(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions_subscription ORDER BY id"  # noqa: S608
    )


def test_a_dry_run_reports_and_keeps_nothing(upstream, settings):
    output = run_import(upstream, "--dry-run")

    assert "Dry run: nothing was kept." in output
    assert "subscriptions_subscription" in output and " 11 " in output
    assert "binary content 2: audio/week2.mp3 is missing" in output
    assert all(count == 0 for count in counts().values())
    assert not (settings.MEDIA_ROOT / "audio" / "week1.mp3").exists()


def test_an_upstream_that_cannot_be_reached_is_a_clear_error(unused_port):
    with pytest.raises(CommandError, match="Cannot connect to the upstream database"):
        call_command("import_upstream", "--from", f"postgresql://postgres@127.0.0.1:{unused_port}/nothing")


def test_a_database_not_shaped_like_the_store_is_a_clear_error(upstream):
    upstream.execute("DROP TABLE authtoken_token")
    with pytest.raises(CommandError, match=r'not shaped like the store.s: relation "authtoken_token" does not exist'):
        run_import(upstream)


def test_the_seed_services_client_reads_the_imported_records_with_an_upstream_token(upstream, live_server):
    run_import(upstream)
    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = inspect.getfullargspec  # the client's HTTP library still calls it (tests/conftest.py)
    from seed_services_client import StageBasedMessagingApiClient

    client = StageBasedMessagingApiClient(HUB_TOKEN, f"{live_server.url}/api/v1")

    subscription = client.get_subscription(str(SUBSCRIPTIONS[2]))
    assert (subscription["identity"], subscription["process_status"], subscription["completed"]) == (
        "mother-2",
        2,
        True,
    )
    assert subscription["created_at"].startswith("2016-11-01T08:00:00")
    assert client.get_schedule(1)["day_of_week"] == "1,3"
    assert client.get_messageset(2)["next_set"] == 2
    assert client.get_message(2)["text_content"] == ZULU_TEXT
    assert client.get_messageset_languages() == {"1": ["eng", "zul"], "2": ["eng"], "3": ["eng"]}
    listed = client.get_subscriptions({"messageset": 3})["results"]
    assert sorted(item["id"] for item in listed) == sorted(str(pk) for pk in EXTRA_SUBSCRIPTIONS)
    assert [task["id"] for task in client.get_failed_tasks()["results"]] == [4]

    created = client.create_message({"messageset": 1, "sequence_number": 3, "lang": "eng", "text_content": "New"})
    assert created["id"] == 7
