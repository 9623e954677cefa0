"""Settings are read and checked in one place, config/settings.py: a bad value stops
start-up naming its variable, and a serving process refuses to start without its secrets."""

import re
import runpy

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.processes import ROOT
from tests.processes import load_settings as load_settings_in_a_process

SECRETS = {"SECRET_KEY": "a-long-random-value-for-this-test-only", "JOBS_SIGNING_KEY": "a-long-random-signing-key"}
# Every variable the service reads (each listed in .env.example as "# NAME=default").
VARIABLES = re.findall(r"^# ([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE)


def load_settings(**environment: str):
    return load_settings_in_a_process(unset={"DEBUG", "JOBS_SIGNING_NEXT_KEY", *SECRETS}, **environment)


def read_settings(monkeypatch, **environment: str) -> dict:
    """The settings module run afresh with only `environment` set of the service's variables."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "config" / "settings.py"))


@pytest.mark.parametrize(
    ("secret", "process"),
    [
        ("SECRET_KEY", "web"),
        ("SECRET_KEY", "worker"),
        ("SECRET_KEY", "scheduler"),
        ("JOBS_SIGNING_KEY", "web"),
        ("JOBS_SIGNING_KEY", "worker"),
        ("JOBS_SIGNING_KEY", "dispatcher"),
    ],
)
def test_a_serving_process_refuses_to_start_without_a_secret_when_debug_is_off(secret, process):
    others = {name: value for name, value in SECRETS.items() if name != secret}
    done = load_settings(DEBUG="false", start=process, **others)
    assert done.returncode != 0
    assert f"{secret} is not set" in done.stderr


def test_management_commands_work_without_the_secrets():
    done = load_settings(DEBUG="false")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded"


def test_it_starts_without_the_secrets_in_debug_mode():
    done = load_settings(DEBUG="true", start="web")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded"


def test_it_starts_with_the_secrets_and_debug_off():
    done = load_settings(start="web", **SECRETS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded"


def test_a_bad_value_stops_start_up_naming_the_variable():
    done = load_settings(start="web", SCHEDULE_TIME_ZONE="Mars/Olympus_Mons", **SECRETS)
    assert done.returncode != 0
    assert "SCHEDULE_TIME_ZONE must be a time zone name such as UTC" in done.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be true or false"),
        ("TOKEN_MINT_MAX_LIFETIME", "a day", "TOKEN_MINT_MAX_LIFETIME must be a whole number, not 'a day'"),
        ("TOKEN_MINT_MAX_LIFETIME", "5", "TOKEN_MINT_MAX_LIFETIME must be at least 60, not 5"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of CRITICAL, FATAL, ERROR"),
        ("TIME_ZONE", "Mars/Olympus", "TIME_ZONE must be a time zone name"),
        ("SCHEDULE_TIME_ZONE", "Mars/Olympus", "SCHEDULE_TIME_ZONE must be a time zone name"),
        ("JOBS_TIME_ZONE", "America", "JOBS_TIME_ZONE must be a time zone name"),
        ("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8,localhost", "'localhost' is not a network"),
        ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/33", "'10.0.0.0/33' is not a network"),
        ("JOBS_RETRY_SCHEDULE", "10,soon", "JOBS_RETRY_SCHEDULE must be whole seconds separated by commas"),
        ("JOBS_RETRY_SCHEDULE", "10,5", "JOBS_RETRY_SCHEDULE must list its whole seconds in increasing order"),
        ("JOBS_RETRY_SCHEDULE", "10,10", "JOBS_RETRY_SCHEDULE must list its whole seconds in increasing order"),
        ("JOBS_RETRY_SCHEDULE", "0,10", "JOBS_RETRY_SCHEDULE must hold no whole seconds below 1"),
        ("SEND_RETRY_DELAYS", "1,soon", "SEND_RETRY_DELAYS must be seconds separated by commas"),
        ("SEND_RETRY_DELAYS", "1,nan", "SEND_RETRY_DELAYS must be seconds separated by commas"),
        ("SEND_RETRY_DELAYS", "1,-4", "SEND_RETRY_DELAYS must hold no seconds below 0"),
        ("DRY_RUN_MESSAGESETS", "3,x", "DRY_RUN_MESSAGESETS must be message set ids separated by commas"),
        ("DRY_RUN_MESSAGESETS", "0", "DRY_RUN_MESSAGESETS must hold no message set ids below 1"),
        ("API_PAGE_SIZE", "6000", "API_PAGE_SIZE (6000) must not be above API_MAX_PAGE_SIZE (5000)"),
        ("CACHE_RATE_LIMIT_BYTES", "1000", "CACHE_RATE_LIMIT_BYTES must be 0 or at least CACHE_MAX_ITEM_BYTES"),
        ("JOBS_LEASE_SECONDS", "2", "JOBS_LEASE_SECONDS must be at least 3, not 2"),
        ("JOBS_DEFAULT_TIMEOUT", "500", "JOBS_DEFAULT_TIMEOUT (500) must not be above JOBS_MAX_TIMEOUT (120)"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch, name, value, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        read_settings(monkeypatch, **{name: value})
    assert str(refused.value).startswith(name)
    assert message in str(refused.value)


def test_the_defaults_load(monkeypatch):
    values = read_settings(monkeypatch)
    assert values["SCHEDULE_TIME_ZONE"] == values["JOBS_TIME_ZONE"] == "UTC"
    assert values["JOBS_RETRY_SCHEDULE"] == [10, 120, 900, 7200, 86400]
    assert values["SEND_RETRY_DELAYS"] == [1.0, 4.0, 15.0]
    assert values["OUTBOUND_ALLOWED_NETWORKS"] == values["METRICS_ALLOWED_NETWORKS"] == []
    assert values["MISSING_SECRETS"] == ["SECRET_KEY", "JOBS_SIGNING_KEY"]


def test_good_values_come_out_typed(monkeypatch):
    values = read_settings(
        monkeypatch,
        SCHEDULE_TIME_ZONE="Africa/Johannesburg",
        OUTBOUND_ALLOWED_NETWORKS=" 127.0.0.0/8, ::1 ",
        METRICS_ALLOWED_NETWORKS="",
        JOBS_RETRY_SCHEDULE="5,60",
        SEND_RETRY_DELAYS="0,0.5",
        DRY_RUN_MESSAGESETS="3, 7",
        LOG_LEVEL="WARNING",
        **SECRETS,
    )
    assert values["SCHEDULE_TIME_ZONE"] == "Africa/Johannesburg"
    assert values["OUTBOUND_ALLOWED_NETWORKS"] == ["127.0.0.0/8", "::1"]  # as written, for the code that parses them
    assert values["METRICS_ALLOWED_NETWORKS"] == []
    assert values["JOBS_RETRY_SCHEDULE"] == [5, 60]
    assert values["SEND_RETRY_DELAYS"] == [0.0, 0.5]
    assert values["DRY_RUN_MESSAGESETS"] == [3, 7]
    assert values["LOG_LEVEL"] == "WARNING"
    assert values["MISSING_SECRETS"] == []


def test_every_variable_the_settings_read_is_listed_in_the_env_example():
    read = set(re.findall(r'\benv_\w+\(\s*"([A-Z][A-Z0-9_]*)"', (ROOT / "config" / "settings.py").read_text()))
    assert read, "no variable found: the pattern no longer matches how settings.py reads them"
    assert sorted(read - set(VARIABLES)) == []
