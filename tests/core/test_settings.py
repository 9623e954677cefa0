import pytest

from tests.processes import load_settings as load_settings_in_a_process


def load_settings(**environment: str):
    return load_settings_in_a_process(unset={"SECRET_KEY", "DEBUG"}, **environment)


@pytest.mark.parametrize("process", ["web", "worker", "scheduler"])
def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(process):
    done = load_settings(DEBUG="false", start=process)
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr


def test_management_commands_work_without_the_secrets():
    done = load_settings(DEBUG="false")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded"


def test_it_starts_without_a_secret_key_in_debug_mode():
    done = load_settings(DEBUG="true", start="web")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded"


def test_it_starts_with_a_secret_key_and_debug_off():
    done = load_settings(SECRET_KEY="a-long-random-value-for-this-test-only", start="web")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be true or false"),
        ("TOKEN_MINT_MAX_LIFETIME", "a day", "TOKEN_MINT_MAX_LIFETIME must be a whole number, not 'a day'"),
        ("TOKEN_MINT_MAX_LIFETIME", "5", "TOKEN_MINT_MAX_LIFETIME must be at least 60, not 5"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name, value, message):
    done = load_settings(**{"SECRET_KEY": "x" * 40, name: value})
    assert done.returncode != 0
    assert message in done.stderr
