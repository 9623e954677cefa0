import os
import secrets

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import services
from accounts.models import User

USERNAME = "admin"
EMAIL = "admin@localhost"


class Command(BaseCommand):
    help = (
        "On first run, create the local admin user and an all-scopes token and print both. "
        "Does nothing when the admin user exists."
    )

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        admin_url = f"http://localhost:{os.environ.get('PORT', '8000')}/admin/"
        if User.objects.filter(username=USERNAME).exists():
            self.stdout.write(
                f"Local admin user '{USERNAME}' exists. New token: python manage.py createtoken {EMAIL}; "
                f"new password: python manage.py changepassword {USERNAME}"
            )
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=USERNAME, email=EMAIL, password=password)
        _, raw = services.token_create(user=user, name="local all-scopes token")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Local admin created (shown once):",
                    f"  admin site  {admin_url}  user '{USERNAME}'  password {password}",
                    f"  API token   {raw}  (every scope)",
                    "",
                ]
            )
        )
