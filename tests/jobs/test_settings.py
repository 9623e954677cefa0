import pytest

from tests.processes import load_settings as load_settings_in_a_process


def load_settings(**environment: str):
    unset = {"DEBUG", "JOBS_SIGNING_KEY", "JOBS_SIGNING_NEXT_KEY", "OUTBOUND_ALLOWED_NETWORKS"}
    return load_settings_in_a_process(unset=unset, **{"SECRET_KEY": "x" * 40, **environment})


@pytest.mark.parametrize("process", ["web", "worker", "dispatcher"])
def test_it_refuses_to_start_without_a_signing_key_when_debug_is_off(process):
    done = load_settings(DEBUG="false", start=process)
    assert done.returncode != 0
    assert "JOBS_SIGNING_KEY is not set" in done.stderr


def test_nothing_is_signed_without_a_signing_key(settings):
    from django.core.exceptions import ImproperlyConfigured

    from jobs.signing import signature_header

    settings.JOBS_SIGNING_KEY = None
    with pytest.raises(ImproperlyConfigured, match="JOBS_SIGNING_KEY is not set"):
        signature_header(timestamp=1, body=b"{}")


def test_it_starts_without_a_signing_key_in_debug_mode():
    done = load_settings(DEBUG="true", start="web")
    assert done.returncode == 0, done.stderr


def test_it_starts_with_a_signing_key_and_debug_off():
    done = load_settings(JOBS_SIGNING_KEY="a-long-random-signing-key", start="web")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8,localhost", "'localhost' is not a network"),
        ("JOBS_TIME_ZONE", "Mars/Olympus", "JOBS_TIME_ZONE must be a time zone name"),
        ("JOBS_RETRY_SCHEDULE", "10,5", "JOBS_RETRY_SCHEDULE must list its whole seconds in increasing order"),
        ("JOBS_RETRY_SCHEDULE", "10,soon", "JOBS_RETRY_SCHEDULE must be whole seconds"),
        ("JOBS_LEASE_SECONDS", "60", "JOBS_LEASE_SECONDS (60) must be above a delivery's time limit"),
        ("JOBS_DEFAULT_TIMEOUT", "500", "JOBS_DEFAULT_TIMEOUT (500) must not be above JOBS_MAX_TIMEOUT"),
    ],
)
def test_a_bad_jobs_setting_stops_start_up_naming_it(name, value, message):
    done = load_settings(JOBS_SIGNING_KEY="k", **{name: value})
    assert done.returncode != 0
    assert message in done.stderr
