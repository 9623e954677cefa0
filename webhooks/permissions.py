from rest_framework import permissions

from accounts.scopes import describe_missing


class WebhooksPermission(permissions.BasePermission):
    """The jobs face's right (read to read, write to change): deliveries are jobs. The topic's
    publish right is checked by the view, once it knows the topic (`topic_allowed`)."""

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if token is None:
            return False
        action = "read" if request.method in permissions.SAFE_METHODS else "write"
        if token.scope_set.allows("jobs", action):
            return True
        self.message = describe_missing("jobs", action)
        return False


def topic_allowed(token, *, cache: str, topic: str) -> bool:
    """Whether the token may publish to the topic: what a webhook of it needs, as it republishes it."""
    return token.scope_set.allows("topics", "publish", cache=cache, topic=topic)
