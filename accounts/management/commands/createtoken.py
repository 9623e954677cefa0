from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts import services
from accounts.models import User
from accounts.scopes import ScopeError, ScopeSet
from core.errors import ScopeDenied


class Command(BaseCommand):
    help = (
        "Create a token for the user with EMAIL (creating the user if needed) and print it "
        "alone on the last line of output."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help="A scope such as messaging:write or cache:readonly:news (repeat for more). "
            "Default: everything the user may do.",
        )
        parser.add_argument("--expires-in", type=int, metavar="SECONDS", help="Lifetime in seconds (default: none).")
        parser.add_argument("--superuser", action="store_true", help="Make the user staff and superuser.")
        parser.add_argument("--name", default="", help="A name to tell the token apart.")

    @transaction.atomic
    def handle(self, *args, email: str, scopes, expires_in, superuser: bool, name: str, **options) -> None:
        try:
            scope_set = ScopeSet.parse(scopes) if scopes else None
        except ScopeError as error:
            raise CommandError(str(error)) from None
        if expires_in is not None and expires_in <= 0:
            raise CommandError("--expires-in must be a positive number of seconds.")

        user = User.objects.filter(email__iexact=email).order_by("pk").first()
        if user is None:
            user = User.objects.create_user(username=email, email=email)
            self.stderr.write(f"Created user {email}.")
        if superuser and not user.is_superuser:
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])

        expires_at = timezone.now() + timedelta(seconds=expires_in) if expires_in else None
        try:
            token, raw = services.token_create(user=user, scopes=scope_set, name=name, expires_at=expires_at)
        except ScopeDenied as error:
            raise CommandError(f"{error} (use --superuser for messaging:admin).") from None
        self.stderr.write(f"Token {token.prefix}… for {email} with scopes: {token.scope_set}")
        self.stdout.write(raw)
