from django.db import migrations

# Each send rewrites its subscriptions' rows. Room left on each page lets PostgreSQL keep
# the new version on the same page without touching the indexes (a HOT update).
FILLFACTOR = 70


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE subscriptions_subscription SET (fillfactor = {FILLFACTOR})")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE subscriptions_subscription RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0001_initial")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
