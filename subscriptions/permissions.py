from accounts.permissions import MessagingPermission


class MessagingUserPermission(MessagingPermission):
    """The token's messaging scope, and a Django permission of its user (`perm`)."""

    perm = ""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.user.has_perm(self.perm):
            return True
        self.message = f"This token's user lacks the permission {self.perm!r}."
        return False


class ViewBehindSubscriptions(MessagingUserPermission):
    """List behind subscriptions: messaging read scope and `subscriptions.view_behindsubscription`."""

    perm = "subscriptions.view_behindsubscription"


class FindBehindSubscriptions(MessagingUserPermission):
    """Start the search: messaging write scope and `subscriptions.can_find_behind_subscriptions`."""

    perm = "subscriptions.can_find_behind_subscriptions"
