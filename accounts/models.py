"""Users, what they may hold (their grants), and their API tokens.

A token's own scopes are fixed when it is made; what it may do is those scopes
bounded by its user's grants as they are now (`ApiToken.scope_set`), so taking a
grant away, or demoting a superuser, takes it from every token of theirs.
"""

import hashlib
from functools import cached_property

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .scopes import ScopeError, ScopeSet, all_scopes

EVERYTHING = all_scopes(admin=True)


def validate_scopes(value) -> None:
    """A JSON list of scopes in the grammar of accounts/scopes.py."""
    try:
        ScopeSet.parse(value)
    except ScopeError as error:
        raise ValidationError(str(error)) from None


class User(AbstractUser):
    """A person or service that owns tokens; identified by email in the API."""

    grants = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_scopes],
        help_text="The scopes this user's tokens may hold. A superuser holds every scope.",
    )

    @property
    def grant_set(self) -> ScopeSet:
        """What the user may do now: nothing when inactive, everything for a superuser."""
        if not self.is_active:
            return ScopeSet(())
        if self.is_superuser:
            return EVERYTHING
        return ScopeSet.parse(self.grants)


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A secret that authenticates requests. Only its SHA-256 digest is stored."""

    PREFIX_LENGTH = 8

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(
        max_length=PREFIX_LENGTH, db_index=True, help_text="The first characters of the token, to tell it apart."
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(
        default=list, help_text="The grants this token holds, bounded at each use by its user's grants."
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="minted",
        help_text="The token that minted this one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.user})"

    @cached_property
    def own_scope_set(self) -> ScopeSet:
        """The scopes the token was made with."""
        return ScopeSet.parse(self.scopes)

    @cached_property
    def scope_set(self) -> ScopeSet:
        """What the token may do: its own scopes, bounded by its user's grants as loaded
        with it (every request on the REST API; TOKEN_CACHE_SECONDS on the hot paths)."""
        return self.own_scope_set.intersection(self.user.grant_set)

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def status(self) -> str:
        if self.is_revoked:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "active"
