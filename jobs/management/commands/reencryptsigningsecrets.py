"""`manage.py reencryptsigningsecrets`: the step of a JOBS_SIGNING_KEY rotation that rewrites the
owners' stored signing secrets under the new key (JOBS_SIGNING_NEXT_KEY while it is set), so the
old key can then be dropped. The secrets themselves do not change; receivers notice nothing."""

from django.core.management.base import BaseCommand

from jobs.signing import signing_secrets_reencrypt


class Command(BaseCommand):
    help = "Encrypt every job owner's signing secret again with the newest key (see docs/jobs.md, Signing)."

    def handle(self, *args, **options) -> None:
        count = signing_secrets_reencrypt()
        self.stdout.write(f"{count} signing secret(s) encrypted with the newest key.")
