from rest_framework import permissions

from accounts.scopes import Grant, ScopeSet


class CacheControlPermission(permissions.BasePermission):
    """Listing needs any cache scope; creating or deleting a cache needs
    `cache:readwrite` over the whole of it (not just some keys)."""

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if token is None:
            return False
        if view.action in ("list", "retrieve"):
            if any(grant.face in ("cache", "topics") for grant in token.scope_set):
                return True
            self.message = "This token holds no cache or topics scope."
            return False
        name = view.kwargs.get(view.lookup_field, "")
        if token.scope_set.covers(ScopeSet([Grant("cache", "readwrite", cache=name)])):
            return True
        self.message = f"Creating or deleting cache {name!r} needs a cache:readwrite scope covering all of it."
        return False
