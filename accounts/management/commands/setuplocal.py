import os
import secrets

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import services
from accounts.models import User

USERNAME = "admin"
EMAIL = "admin@localhost"


class Command(BaseCommand):
    help = (
        "Prepare a local run in one process: migrate, collect static files when DEBUG is off (with DEBUG "
        "on they are served from the apps), and on first run create the local admin user and an "
        "all-scopes token and print both. Leaves an existing admin user alone."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--skip-migrate", action="store_true", help="Only create the admin user.")

    def handle(self, *args, skip_migrate: bool = False, **options) -> None:
        if not skip_migrate:
            self.stdout.write("Migrating the database")
            call_command("migrate", interactive=False, verbosity=1, stdout=self.stdout)
            if not settings.DEBUG:
                self.stdout.write("Collecting static files")
                call_command("collectstatic", interactive=False, verbosity=0, stdout=self.stdout)
        self.create_admin()

    @transaction.atomic
    def create_admin(self) -> None:
        admin_url = f"http://localhost:{os.environ.get('PORT', '8000')}/admin/"
        if User.objects.filter(username=USERNAME).exists():
            self.stdout.write(
                f"Local admin user '{USERNAME}' exists. New token: bin/manage createtoken {EMAIL}; "
                f"new password: bin/manage changepassword {USERNAME}"
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
