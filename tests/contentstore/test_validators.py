import pytest
from django.core.exceptions import ValidationError

from contentstore import validators
from contentstore.models import Schedule


def refusal(validate, value) -> list[str]:
    """What `validate` says against `value`: nothing when it accepts it."""
    try:
        validate(value)
    except ValidationError as error:
        return error.messages
    return []


@pytest.mark.parametrize(
    ("fields", "cron"),
    [
        ({}, "* * * * *"),
        ({"minute": "0", "hour": "8", "day_of_week": "1,3"}, "0 8 * * 1,3"),
        ({"minute": "0, 30", "day_of_month": "", "month_of_year": " 1 - 6 "}, "0,30 * * 1-6 *"),
    ],
)
def test_the_cron_string_removes_spaces_and_reads_empty_as_a_star(fields, cron):
    assert Schedule(**fields).cron_string == cron


@pytest.mark.parametrize(
    ("validate", "value"),
    [
        (validators.validate_minute, "*/15"),
        (validators.validate_minute, "0,30"),
        (validators.validate_hour, "8-17/3"),
        (validators.validate_day_of_week, "mon-fri"),
        (validators.validate_day_of_week, "0"),
        (validators.validate_day_of_month, "1,15"),
        (validators.validate_month_of_year, "1-12"),
    ],
)
def test_it_accepts_cron_fields_the_scheduler_reads(validate, value):
    assert refusal(validate, value) == []


@pytest.mark.parametrize(
    ("validate", "value"),
    [
        (validators.validate_minute, "60"),
        (validators.validate_minute, "JAN"),  # the scheduler's parser would take it; cron would not
        (validators.validate_hour, "-1"),
        (validators.validate_day_of_week, "7"),  # cron's other Sunday; the scheduler's parser refuses it
        (validators.validate_day_of_month, "32"),
        (validators.validate_month_of_year, "0"),
        (validators.validate_minute, "*/"),
    ],
)
def test_it_refuses_cron_fields_either_parser_refuses(validate, value):
    with pytest.raises(ValidationError) as raised:
        validate(value)
    assert raised.value.code == "invalid_cron"


def test_a_refused_cron_field_says_what_it_takes():
    with pytest.raises(ValidationError) as raised:
        validators.validate_day_of_week("8")
    assert raised.value.messages == [
        "'8' is not a valid day of week: use 0-6 (Sunday is 0) or sun-sat, with * , - and / (e.g. */15 or 1-5)."
    ]


@pytest.mark.parametrize("text", ["Plain \"quotes\" and 'apostrophes' - fine", "", None])
def test_plain_punctuation_passes(text):
    assert refusal(validators.validate_plain_punctuation, text) == []


def test_each_typographic_character_is_named_once():
    with pytest.raises(ValidationError) as raised:
        validators.validate_plain_punctuation("it\u2019s \u2019quoted\u2019")
    assert raised.value.messages == ["Text has special characters which can be replaced: \u2019 (use ')."]


@pytest.mark.parametrize(
    ("channel", "text", "has_file", "errors"),
    [
        (None, "", False, [validators.TEXT_OR_FILE_MESSAGE]),
        (None, None, True, []),
        ("WhatsApp", "Two\nlines", False, [validators.WHATSAPP_MESSAGE]),
        ("whatsapp_audio", "Four    spaces", True, [validators.WHATSAPP_MESSAGE]),
        ("whatsapp", "Three   spaces", False, []),
        ("sms", "Two\nlines", False, []),
    ],
)
def test_message_text_rules(channel, text, has_file, errors):
    assert validators.message_text_errors(channel=channel, text_content=text, has_file=has_file) == errors


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("a.mp3", "audio/mpeg"), ("a.OGG", "audio/ogg"), ("a.m4a", "audio/mp4"), ("a.png", "image/png"), ("a", None)],
)
def test_a_files_type_is_told_from_its_extension(name, media_type):
    assert validators.guess_media_type(name) == media_type


@pytest.mark.parametrize(
    ("media_type", "allowed", "ok"),
    [
        ("audio/mpeg", ["audio/*"], True),
        ("audio/mpeg", ["audio/ogg"], False),
        ("image/png", ["audio/*", "image/png"], True),
        ("text/plain", ["*/*"], True),
        (None, ["*/*"], False),
    ],
)
def test_allowed_types_take_families(media_type, allowed, ok):
    assert validators.media_type_allowed(media_type, allowed) is ok
