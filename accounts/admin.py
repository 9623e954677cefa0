"""The admin site's users (with what each is granted) and API tokens."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.utils import timezone

from core.errors import ScopeDenied

from . import services
from .models import ApiToken, User
from .scopes import ScopeError, ScopeSet

SCOPE_EXAMPLES = (
    "One per line, e.g. <code>messaging:write</code>, <code>cache:readonly:news:key_prefix=user-</code>, "
    "<code>topics:subscribeonly:chat:topic_prefix=room-</code>, <code>jobs:readwrite</code>, "
    "<code>tokens:mint</code>."
)


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class ScopeLinesField(forms.CharField):
    """Scopes written one per line; cleans to a ScopeSet, or None when empty."""

    widget = forms.Textarea(attrs={"rows": 5, "cols": 60})

    def prepare_value(self, value):
        if isinstance(value, list):  # the stored JSON form
            return "\n".join(str(grant) for grant in ScopeSet.parse(value))
        return value

    def clean(self, value) -> ScopeSet | None:
        lines = _lines(super().clean(value))
        if not lines:
            return None
        try:
            return ScopeSet.parse(lines)
        except ScopeError as error:
            raise forms.ValidationError(str(error)) from None

    def has_changed(self, initial, data) -> bool:
        return self.prepare_value(initial or []) != "\n".join(_lines(data))


class UserGrantsForm(UserChangeForm):
    grants = ScopeLinesField(
        required=False,
        help_text=f"The scopes this user's tokens may hold. {SCOPE_EXAMPLES} Empty: none. "
        "A superuser holds every scope whatever is written here.",
    )

    def clean_grants(self) -> list[dict[str, str]]:
        grants = self.cleaned_data["grants"]
        return grants.as_json() if grants else []


@admin.register(User)
class GrantingUserAdmin(UserAdmin):
    """Django's user admin, plus what each user is granted."""

    form = UserGrantsForm
    fieldsets = [*UserAdmin.fieldsets, ("Grants", {"fields": ["grants"]})]


class ApiTokenCreationForm(forms.ModelForm):
    """Creates a token: its secret is generated on save and shown once."""

    scope_lines = ScopeLinesField(
        label="Scopes",
        required=False,
        help_text=f"{SCOPE_EXAMPLES} Empty: everything the user is granted.",
    )

    class Meta:
        model = ApiToken
        fields = ["user", "name", "expires_at"]

    def clean(self):
        cleaned = super().clean()
        user, scopes = cleaned.get("user"), cleaned.get("scope_lines")
        if user is not None and not self.has_error("scope_lines"):
            wanted = user.grant_set if scopes is None else scopes
            uncovered = user.grant_set.uncovered(wanted)
            if not wanted:
                self.add_error("scope_lines", "This user holds no grants: grant them on the user's page first.")
            elif uncovered:
                self.add_error(
                    "scope_lines",
                    f"This user may not hold {', '.join(map(str, uncovered))}: grant it on the user's page first.",
                )
        return cleaned


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "scope_summary", "status", "created_at", "expires_at", "last_used_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["prefix", "name", "user__username", "user__email"]
    list_select_related = ["user"]
    readonly_fields = [
        "prefix",
        "scope_summary",
        "effective_scopes",
        "parent",
        "created_at",
        "last_used_at",
        "revoked_at",
        "status",
    ]
    fields = [
        "user",
        "name",
        "prefix",
        "scope_summary",
        "effective_scopes",
        "status",
        "parent",
        "expires_at",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]
    raw_id_fields = ["user"]

    @admin.display(description="Scopes")
    def scope_summary(self, token: ApiToken) -> str:
        return str(token.own_scope_set)

    @admin.display(description="What it may do now (its scopes within its user's grants)")
    def effective_scopes(self, token: ApiToken) -> str:
        return str(token.scope_set) or "nothing"

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenCreationForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "scope_lines", "expires_at"]
        return self.fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [*self.readonly_fields, "user"]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        try:
            token, raw = services.token_create(
                user=form.cleaned_data["user"],
                scopes=form.cleaned_data["scope_lines"],
                name=form.cleaned_data["name"],
                expires_at=form.cleaned_data["expires_at"],
            )
        except ScopeDenied as error:  # the form checks this first; kept for races
            self.message_user(request, str(error), messages.ERROR)
            return
        obj.pk, obj.prefix, obj.user, obj.name = token.pk, token.prefix, token.user, token.name
        self.message_user(
            request,
            f"Token created: {raw} — copy it now, it is not shown again.",
            messages.SUCCESS,
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the record stays for the audit trail

    @admin.action(description="Revoke selected tokens (and the tokens minted from them)")
    def revoke(self, request, queryset) -> None:
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            services.token_revoke(token=token)
            count += 1
        self.message_user(request, f"Revoked {count} token(s) at {timezone.now():%Y-%m-%d %H:%M:%S %Z}.")
