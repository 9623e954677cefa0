"""An upstream-shaped database (harness/upstream.py) filled with awkward records, and its media root."""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings

from harness.upstream import create_upstream_database

AUDIO_BYTES = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 32  # MP3 with an ID3 tag
HUB_TOKEN = "0123456789abcdef0123456789abcdef01234567"
SCHEDULER_TOKEN = "fedcba9876543210fedcba9876543210fedcba98"
RETIRED_TOKEN = "aaaabbbbccccddddeeeeffff0000111122223333"
# One subscription in each process status upstream used (5: marked invalid by its management commands).
STATUSES = (0, 1, 2, -1, 5)
SUBSCRIPTIONS = {status: uuid.UUID(int=index + 1) for index, status in enumerate(STATUSES)}
EXTRA_SUBSCRIPTIONS = [uuid.UUID(int=100 + number) for number in range(6)]
CREATED = datetime(2016, 11, 1, 8, 0, tzinfo=UTC)
ZULU_TEXT = "Sawubona, mama! Ngiyabonga ñ é 你好"


@dataclass
class Upstream:
    url: str
    media_root: Path

    def execute(self, sql: str, params=()) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


def _fill(connection: psycopg.Connection) -> None:
    execute = connection.execute
    for pk, username, staff, active in [
        (1, "hub", False, True),
        (2, "scheduler", True, True),
        (3, "old", False, False),
    ]:
        execute(
            "INSERT INTO auth_user (id, password, is_superuser, username, email, is_staff, is_active) "
            "VALUES (%s, 'pbkdf2_sha256$1$salt$hash', false, %s, %s, %s, %s)",
            (pk, username, f"{username}@example.org", staff, active),
        )
    for key, user in [(HUB_TOKEN, 1), (SCHEDULER_TOKEN, 2), (RETIRED_TOKEN, 3)]:
        execute("INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)", (key, CREATED, user))
    schedules = [
        (1, "0", "8", "1, 3", "*", "*"),  # spaces, as operators typed them upstream
        (2, " */30", "8-17", "*", "*", "*"),
        (7, "61", "*", "*", "*", "*"),  # not a minute: upstream kept it, its scheduler never fired it
    ]
    for row in schedules:
        execute(
            "INSERT INTO contentstore_schedule (id, minute, hour, day_of_week, day_of_month, month_of_year, "
            "scheduler_schedule_id) VALUES (%s, %s, %s, %s, %s, %s, gen_random_uuid())",
            row,
        )
    execute(
        "INSERT INTO contentstore_messageset (id, short_name, label, notes, channel, next_set_id, "
        "default_schedule_id, content_type) VALUES "
        "(1, 'prebirth', 'Pregnancy', NULL, NULL, 2, 1, 'text'), "
        "(2, 'postbirth', 'Baby', 'loops on itself', 'WHATSAPP', 2, 2, 'text'), "
        "(3, 'voice', '', NULL, NULL, NULL, 1, 'audio')"
    )
    execute(
        "INSERT INTO contentstore_binarycontent (id, content) VALUES (1, 'audio/week1.mp3'), (2, 'audio/week2.mp3'), "
        "(3, 'audio/page.mp3'), (4, '../outside.mp3')"
    )
    messages = [
        (1, 1, 1, "eng", "Week one", None, json.dumps({"week": 1})),
        (2, 1, 1, "zul", ZULU_TEXT, None, json.dumps({"note": "ñé"})),
        (3, 1, 2, "eng", None, None, None),  # neither text nor file: upstream let it in
        (4, 2, 1, "eng", "Baby week one", None, "{}"),
        (5, 3, 1, "eng", None, 1, None),
        (6, 3, 2, "eng", None, 2, None),  # its file is missing on disk
    ]
    for row in messages:
        execute(
            "INSERT INTO contentstore_message (id, messageset_id, sequence_number, lang, text_content, "
            "binary_content_id, metadata) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            row,
        )
    subscriptions = [
        (pk, f"mother-{status}", 1, 2 if status == 2 else 1, status not in (2, 5), status == 2, status)
        for status, pk in SUBSCRIPTIONS.items()
    ] + [(pk, f"extra-{index}", 3, 1, True, False, 0) for index, pk in enumerate(EXTRA_SUBSCRIPTIONS)]
    for pk, identity, messageset, next_number, active, completed, status in subscriptions:
        execute(
            "INSERT INTO subscriptions_subscription (id, identity, version, messageset_id, initial_sequence_number, "
            "next_sequence_number, lang, active, completed, schedule_id, process_status, metadata, created_at, "
            "updated_at, created_by_id, updated_by_id) "
            "VALUES (%s, %s, 1, %s, 1, %s, 'zul', %s, %s, 1, %s, %s, %s, %s, 1, NULL)",
            (
                pk,
                identity,
                messageset,
                next_number,
                active,
                completed,
                status,
                None if status == 5 else json.dumps({"name": "Nomsa ñ", "status": status}),
                CREATED,
                CREATED,
            ),
        )
    ready = SUBSCRIPTIONS[0]
    execute(
        "INSERT INTO subscriptions_subscriptionsendfailure (id, subscription_id, task_id, initiated_at, reason) "
        "VALUES (4, %s, gen_random_uuid(), %s, 'Message sender said 503')",
        (ready, CREATED),
    )
    execute(
        "INSERT INTO subscriptions_estimatedsend (id, send_date, messageset_id, estimate_subscriptions, "
        "estimate_identities) VALUES (9, '2016-11-02', 1, 5, 4)"
    )
    execute(
        "INSERT INTO subscriptions_resendrequest (id, received_at, subscription_id, outbound, message_id) "
        "VALUES (3, %s, %s, gen_random_uuid(), 1)",
        (CREATED, ready),
    )
    execute(
        "INSERT INTO subscriptions_behindsubscription (id, subscription_id, messages_behind, current_messageset_id, "
        "current_sequence_number, expected_messageset_id, expected_sequence_number, created_at) "
        "VALUES (2, %s, 3, 1, 1, 1, 4, %s)",
        (ready, CREATED),
    )


@pytest.fixture
def upstream(tmp_path, settings) -> Upstream:
    """A fresh upstream database (named after this run's test database) and media root, and a fresh
    media root here."""
    settings.MEDIA_ROOT = tmp_path / "media"
    name = f"{django_settings.DATABASES['default']['NAME']}_upstream"
    url = create_upstream_database(name)
    with psycopg.connect(url) as connection:
        _fill(connection)
    media_root = tmp_path / "upstream-media"
    (media_root / "audio").mkdir(parents=True)
    (media_root / "audio" / "week1.mp3").write_bytes(AUDIO_BYTES)
    (media_root / "audio" / "page.mp3").write_bytes(b"<html><script>alert(1)</script></html>")  # not audio
    (tmp_path / "outside.mp3").write_bytes(AUDIO_BYTES)  # beside the media root, not in it
    return Upstream(url, media_root)
