from rest_framework import permissions

from accounts.permissions import ScopePermission


class JobsPermission(ScopePermission):
    """jobs:readonly to read, jobs:readwrite to change."""

    face = "jobs"

    def action_for(self, request, view) -> str:
        return "read" if request.method in permissions.SAFE_METHODS else "write"
