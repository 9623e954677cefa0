"""A cache: a name clients and tokens use, its limits, and who created it."""

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NAME_RULE = "A cache name is 1 to 64 characters: letters, digits, '-', '_' and '.', starting with a letter or digit."


class Cache(models.Model):
    """A named cache. Its items live in Redis under keys that carry the cache's id,
    so a cache deleted and created again never sees the old items."""

    name = models.CharField(
        max_length=64, unique=True, validators=[RegexValidator(NAME_PATTERN, NAME_RULE)], help_text=NAME_RULE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The user who created the cache (empty: an operator's command, or before this was recorded).",
    )
    max_item_bytes = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Largest item (key + value) in bytes; empty for CACHE_MAX_ITEM_BYTES.",
    )
    max_ttl_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Longest TTL in seconds; empty for CACHE_MAX_TTL_SECONDS.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
