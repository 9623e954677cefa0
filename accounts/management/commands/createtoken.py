"""The operator's way to give someone access: grant scopes and print a token holding them."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts import services
from accounts.scopes import ScopeError, ScopeSet
from core.errors import ScopeDenied


class Command(BaseCommand):
    help = (
        "Create a token for the user with EMAIL (creating the user if needed, with no grants), "
        "granting the user the scopes named, and print it alone on the last line of output."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help="A scope such as messaging:write or cache:readonly:news (repeat for more), granted to "
            "the user. Default: everything the user is granted already.",
        )
        parser.add_argument("--expires-in", type=int, metavar="SECONDS", help="Lifetime in seconds (default: none).")
        parser.add_argument(
            "--superuser", action="store_true", help="Make the user staff and superuser (granted everything)."
        )
        parser.add_argument("--name", default="", help="A name to tell the token apart.")

    @transaction.atomic
    def handle(self, *args, email: str, scopes, expires_in, superuser: bool, name: str, **options) -> None:
        try:
            scope_set = ScopeSet.parse(scopes) if scopes else None
        except ScopeError as error:
            raise CommandError(str(error)) from None
        if expires_in is not None and expires_in <= 0:
            raise CommandError("--expires-in must be a positive number of seconds.")

        user, created = services.user_for_email(email)
        if created:
            self.stderr.write(f"Created user {email}.")
        if superuser and not user.is_superuser:
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        if scope_set is not None:
            services.user_grant(user=user, scopes=scope_set)

        expires_at = timezone.now() + timedelta(seconds=expires_in) if expires_in else None
        try:
            token, raw = services.token_create(user=user, scopes=scope_set, name=name, expires_at=expires_at)
        except ScopeDenied as error:
            hint = " Name the scopes to grant with --scope, or use --superuser." if user.is_active else ""
            raise CommandError(f"{error}{hint}") from None
        self.stderr.write(f"Token {token.prefix}… for {email} with scopes: {token.scope_set}")
        self.stdout.write(raw)
