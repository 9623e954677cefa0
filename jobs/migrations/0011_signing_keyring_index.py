"""A keyring's signing secrets are found by the keyring (owner, keyring), not among all of the owner's secrets:
they are read with each job signed, and an owner may have a keyring for each of many topic webhooks. The index
on the owner alone is dropped (the new one starts with it). The table holds a few rows per owner: built as is.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0010_recurring_due_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="signingsecret",
            index=models.Index(fields=["user", "keyring"], name="jobs_signing_keyring"),
        ),
        migrations.AlterField(
            model_name="signingsecret",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="job_signing_secrets",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
