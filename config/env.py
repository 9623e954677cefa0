"""Typed readers of the environment, for config/settings.py.

Each reads one variable and returns a value of its type, or raises
ImproperlyConfigured naming the variable, so that a bad value stops every process
at start-up (when the settings load) rather than the first request that uses it.
Only the standard library and Django's exception: settings load before any app.
"""

import ipaddress
import logging
import math
import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def require(condition: bool, message: str) -> None:
    """A rule between settings: stop start-up with `message` (which names them) unless it holds."""
    if not condition:
        raise ImproperlyConfigured(message)


def env_str(name: str, default: str | None = None) -> str | None:
    """The variable's value; `default` when it is unset or empty."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (1/0, yes/no, on/off), not {raw!r}.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None
    require(value >= minimum, f"{name} must be at least {minimum}, not {value}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Comma-separated items; `default` when unset, none when empty."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: list[str]) -> str:
    value = env_str(name, default)
    require(value in choices, f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def env_log_level(name: str, default: str) -> str:
    """A level name the logging module knows (DEBUG, INFO, WARNING, ...)."""
    return env_choice(name, default, list(logging.getLevelNamesMapping()))


def env_zone(name: str, default: str) -> str:
    """An IANA time zone name (UTC, Africa/Johannesburg), checked against the zone database."""
    value = env_str(name, default)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ImproperlyConfigured(
            f"{name} must be a time zone name such as UTC or Africa/Johannesburg, not {value!r}."
        ) from None
    return value


def env_networks(name: str, default: list[str]) -> list[str]:
    """Comma-separated addresses or CIDRs, each checked; kept as written (the code that uses them parses them)."""
    values = env_list(name, default)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not a network: write it as an address or a CIDR, e.g. 127.0.0.0/8."
            ) from None
    return values


def env_numbers(
    name: str,
    default: list[float],
    *,
    minimum: float = 0,
    whole: bool = False,
    increasing: bool = False,
    what: str = "numbers",
) -> list:
    """Comma-separated numbers (whole ones when `whole`), none below `minimum`, strictly
    increasing when `increasing`; `what` says in the errors what they are ("seconds")."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    parse = int if whole else float
    try:
        values = [parse(part) for part in raw.split(",") if part.strip()]
        if not all(math.isfinite(value) for value in values):  # nan, inf
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {what} separated by commas, not {raw!r}.") from None
    require(all(value >= minimum for value in values), f"{name} must hold no {what} below {minimum}, not {raw!r}.")
    if increasing:
        require(values == sorted(set(values)), f"{name} must list its {what} in increasing order, not {raw!r}.")
    return values


def env_secret(name: str, *, debug: bool, development_value: str) -> str:
    """A secret; when unset, `development_value` with DEBUG on, else "" (then serving
    processes refuse to start: MISSING_SECRETS, core/startup.py)."""
    return env_str(name) or (development_value if debug else "")


def env_addresses(name: str, default: list[str]) -> tuple[tuple[str, int], ...]:
    """Comma-separated `host:port` pairs, as (host, port) tuples."""
    addresses = []
    for value in env_list(name, default):
        host, _, port = value.rpartition(":")
        require(
            bool(host) and port.isdigit() and 0 < int(port) < 65536,
            f"{name}: {value!r} is not an address: write it as host:port, e.g. 10.0.0.5:26379.",
        )
        addresses.append((host.strip("[]"), int(port)))
    return tuple(addresses)
