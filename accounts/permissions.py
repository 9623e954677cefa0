from rest_framework import permissions

from .scopes import describe_missing


class ScopePermission(permissions.BasePermission):
    """Allows a request when the token holds `face` scope for the action.

    The 403 message names what is missing.
    """

    face: str = ""

    def action_for(self, request, view) -> str:
        raise NotImplementedError

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if token is None:
            return False
        action = self.action_for(request, view)
        if token.scope_set.allows(self.face, action):
            return True
        self.message = describe_missing(self.face, action)
        return False


class MessagingPermission(ScopePermission):
    """Messaging read scope to read, write scope to change."""

    face = "messaging"

    def action_for(self, request, view) -> str:
        return "read" if request.method in permissions.SAFE_METHODS else "write"


class MessagingAdminPermission(ScopePermission):
    face = "messaging"

    def action_for(self, request, view) -> str:
        return "admin"


class TokensPermission(ScopePermission):
    """Minting, listing and revoking tokens need tokens:mint."""

    face = "tokens"

    def action_for(self, request, view) -> str:
        return "mint"
