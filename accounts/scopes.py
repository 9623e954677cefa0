"""What a token may do: a list of grants, one face and role each.

A grant is written as a string (the management command, the admin) or as a JSON
object (the API, and how it is stored)::

    messaging:read | messaging:write | messaging:admin
    cache:<role>[:<cache>][:key=<key> | :key_prefix=<prefix>]
    topics:<role>[:<cache>][:topic=<topic> | :topic_prefix=<prefix>]
    jobs:readonly | jobs:readwrite
    tokens:mint

    {"face": "cache", "role": "readonly", "cache": "news", "key_prefix": "user-"}

A missing or `*` cache means every cache. Several grants combine: a request is
allowed when any one grant allows it. What a token may do now is its own grants
intersected with its user's (`ScopeSet.intersection`): a request is allowed when
both allow it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ROLE_ACTIONS: dict[str, dict[str, frozenset[str]]] = {
    "messaging": {
        "read": frozenset({"read"}),
        "write": frozenset({"read", "write"}),
        "admin": frozenset({"read", "write", "admin"}),
    },
    "cache": {
        "readwrite": frozenset({"read", "write"}),
        "readonly": frozenset({"read"}),
        "writeonly": frozenset({"write"}),
    },
    "topics": {
        "publishsubscribe": frozenset({"publish", "subscribe"}),
        "subscribeonly": frozenset({"subscribe"}),
        "publishonly": frozenset({"publish"}),
    },
    "jobs": {
        "readwrite": frozenset({"read", "write"}),
        "readonly": frozenset({"read"}),
    },
    "tokens": {
        "mint": frozenset({"mint"}),
    },
}

ALL_CACHES = "*"
# The narrowing each face accepts: (exact name, name prefix).
NARROWING = {"cache": ("key", "key_prefix"), "topics": ("topic", "topic_prefix")}
GRANT_FIELDS = ("face", "role", "cache", "key", "key_prefix", "topic", "topic_prefix")


def _role_with(face: str, actions: frozenset[str]) -> str | None:
    """The role of `face` that allows exactly `actions`, if any."""
    return next((role for role, allowed in ROLE_ACTIONS[face].items() if allowed == actions and actions), None)


def _narrowing_intersection(
    one: tuple[str | None, str | None], other: tuple[str | None, str | None]
) -> tuple[str | None, str | None] | None:
    """The (exact, prefix) narrowing allowing what both allow; None when nothing is."""
    if one == (None, None):
        return other
    if other == (None, None):
        return one
    (exact, prefix), (other_exact, other_prefix) = one, other
    if exact is not None:
        return one if _matches(exact, exact=other_exact, prefix=other_prefix) else None
    if other_exact is not None:
        return other if _matches(other_exact, exact=exact, prefix=prefix) else None
    if prefix.startswith(other_prefix):
        return one
    return other if other_prefix.startswith(prefix) else None


class ScopeError(ValueError):
    """A scope that cannot be read; the message says what is wrong with it."""


def _matches(value: str | bytes | None, *, exact: str | None, prefix: str | None) -> bool:
    if exact is None and prefix is None:
        return True
    if value is None:
        return False
    if isinstance(value, bytes):
        if exact is not None:
            return value == exact.encode()
        return value.startswith(prefix.encode())
    if exact is not None:
        return value == exact
    return value.startswith(prefix)


@dataclass(frozen=True)
class Grant:
    face: str
    role: str
    cache: str | None = None
    key: str | None = None
    key_prefix: str | None = None
    topic: str | None = None
    topic_prefix: str | None = None

    @property
    def actions(self) -> frozenset[str]:
        return ROLE_ACTIONS[self.face][self.role]

    @property
    def _narrowing(self) -> tuple[str | None, str | None]:
        if self.face == "cache":
            return self.key, self.key_prefix
        if self.face == "topics":
            return self.topic, self.topic_prefix
        return None, None

    def allows(
        self,
        face: str,
        action: str,
        *,
        cache: str | None = None,
        key: str | bytes | None = None,
        topic: str | None = None,
    ) -> bool:
        """Whether this grant allows `action` on the resource named."""
        if face != self.face or action not in self.actions:
            return False
        if self.cache not in (None, ALL_CACHES) and cache != self.cache:
            return False
        exact, prefix = self._narrowing
        resource = key if face == "cache" else topic
        return _matches(resource, exact=exact, prefix=prefix)

    def covers(self, other: Grant) -> bool:
        """Whether everything `other` allows, this grant allows too."""
        if other.face != self.face or not other.actions <= self.actions:
            return False
        if self.cache not in (None, ALL_CACHES) and other.cache != self.cache:
            return False
        exact, prefix = self._narrowing
        if exact is None and prefix is None:
            return True
        other_exact, other_prefix = other._narrowing
        if other_exact is not None:
            return _matches(other_exact, exact=exact, prefix=prefix)
        if other_prefix is not None and exact is None:
            return other_prefix.startswith(prefix)
        return False

    def intersection(self, other: Grant) -> Grant | None:
        """The grant allowing exactly what both allow, or None when they share nothing.

        Every face's roles are closed under intersection (readwrite and readonly share
        readonly; readonly and writeonly share nothing), and so are its narrowings.
        """
        if other.face != self.face:
            return None
        role = _role_with(self.face, self.actions & other.actions)
        if role is None:
            return None
        caches = {name for name in (self.cache, other.cache) if name not in (None, ALL_CACHES)}
        if len(caches) > 1:
            return None
        fields = {"face": self.face, "role": role, "cache": caches.pop() if caches else None}
        if self.face in NARROWING:
            narrowing = _narrowing_intersection(self._narrowing, other._narrowing)
            if narrowing is None:
                return None
            fields.update(zip(NARROWING[self.face], narrowing, strict=True))
        return Grant(**fields)

    def as_json(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in GRANT_FIELDS if getattr(self, name) is not None}

    def __str__(self) -> str:
        parts = [self.face, self.role]
        if self.face in NARROWING:
            parts.append(self.cache or ALL_CACHES)
            for name in NARROWING[self.face]:
                if getattr(self, name) is not None:
                    parts.append(f"{name}={getattr(self, name)}")
        return ":".join(parts)


def _grant_from_string(text: str) -> dict[str, str]:
    parts = text.strip().split(":")
    if len(parts) < 2 or not all(parts[:2]):
        raise ScopeError(f"{text!r} is not a scope: write it as face:role, e.g. messaging:read.")
    fields = {"face": parts[0], "role": parts[1]}
    rest = parts[2:]
    if rest and "=" not in rest[0]:
        fields["cache"] = rest.pop(0)
    for part in rest:
        name, sep, value = part.partition("=")
        if not sep:
            raise ScopeError(f"{text!r}: {part!r} should be name=value.")
        if name in fields:
            raise ScopeError(f"{text!r}: {name} is given twice.")
        fields[name] = value
    return fields


def parse_grant(value: str | dict) -> Grant:
    """One grant from its string or JSON form, validated."""
    if isinstance(value, str):
        fields = _grant_from_string(value)
    elif isinstance(value, dict):
        fields = dict(value)
    else:
        raise ScopeError("Each scope must be a string like 'messaging:read' or an object.")

    unknown = set(fields) - set(GRANT_FIELDS)
    if unknown:
        raise ScopeError(f"Unknown scope field(s): {', '.join(sorted(unknown))}.")
    for name, field_value in fields.items():
        if not isinstance(field_value, str) or not field_value:
            raise ScopeError(f"Scope field {name!r} must be a non-empty string.")

    face, role = fields.get("face"), fields.get("role")
    if face not in ROLE_ACTIONS:
        raise ScopeError(f"Unknown face {face!r}: use one of {', '.join(ROLE_ACTIONS)}.")
    if role not in ROLE_ACTIONS[face]:
        raise ScopeError(f"Unknown {face} role {role!r}: use one of {', '.join(ROLE_ACTIONS[face])}.")

    allowed = {"face", "role"}
    if face in NARROWING:
        allowed |= {"cache", *NARROWING[face]}
    extra = set(fields) - allowed
    if extra:
        raise ScopeError(f"A {face} scope cannot be narrowed by {', '.join(sorted(extra))}.")
    if face in NARROWING and all(name in fields for name in NARROWING[face]):
        exact, prefix = NARROWING[face]
        raise ScopeError(f"A {face} scope takes {exact} or {prefix}, not both.")
    if fields.get("cache") == ALL_CACHES:
        del fields["cache"]
    return Grant(**fields)


class ScopeSet:
    """The grants a token holds."""

    def __init__(self, grants: Iterable[Grant]):
        self.grants: tuple[Grant, ...] = tuple(dict.fromkeys(grants))

    @classmethod
    def parse(cls, values: Iterable[str | dict] | None) -> ScopeSet:
        if values is None:
            return cls(())
        if isinstance(values, (str, dict)) or not isinstance(values, Iterable):
            raise ScopeError("Scopes must be a list.")
        return cls(parse_grant(value) for value in values)

    def allows(self, face: str, action: str, **resource) -> bool:
        return any(grant.allows(face, action, **resource) for grant in self.grants)

    def covers(self, other: ScopeSet) -> bool:
        return not self.uncovered(other)

    def uncovered(self, other: ScopeSet) -> list[Grant]:
        """The grants of `other` that no grant of this set covers."""
        return [wanted for wanted in other.grants if not any(held.covers(wanted) for held in self.grants)]

    def intersection(self, other: ScopeSet) -> ScopeSet:
        """What both sets allow: a request is allowed by the result when both allow it.

        A grant the result holds twice over (covered by a wider one) is left out.
        """
        shared = [
            common
            for mine in self.grants
            for theirs in other.grants
            if (common := mine.intersection(theirs)) is not None
        ]
        return ScopeSet(
            grant for grant in shared if not any(wider.covers(grant) and not grant.covers(wider) for wider in shared)
        )

    def as_json(self) -> list[dict[str, str]]:
        return [grant.as_json() for grant in self.grants]

    def __bool__(self) -> bool:
        return bool(self.grants)

    def __iter__(self):
        return iter(self.grants)

    def __str__(self) -> str:
        return ", ".join(str(grant) for grant in self.grants)


def describe_missing(face: str, action: str, **resource) -> str:
    """The 403 message: what the token would need to be allowed."""
    roles = [role for role, actions in ROLE_ACTIONS[face].items() if action in actions]
    named = {
        name: value.decode(errors="backslashreplace") if isinstance(value, bytes) else value
        for name, value in resource.items()
        if value is not None
    }
    target = "".join(f" {name} {value!r}" for name, value in named.items())
    return (
        f"This token does not allow {face} {action}{target}: "
        f"it needs a {face} scope with role {' or '.join(roles)}"
        f"{' covering it' if target else ''}."
    )


def all_scopes(*, admin: bool) -> ScopeSet:
    """Every face's widest grant; with `admin`, messaging admin too (everything a superuser holds)."""
    return ScopeSet.parse(
        [
            "messaging:admin" if admin else "messaging:write",
            "cache:readwrite",
            "topics:publishsubscribe",
            "jobs:readwrite",
            "tokens:mint",
        ]
    )
