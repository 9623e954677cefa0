from django.core.management.base import BaseCommand

from contentstore import services
from contentstore.models import Schedule


class Command(BaseCommand):
    help = (
        "Make or correct the scheduler's crontab task of every schedule (after restoring a database, "
        "or changing SCHEDULE_TIME_ZONE)."
    )

    def handle(self, *args, **options) -> None:
        count = 0
        for schedule in Schedule.objects.select_related("periodic_task__crontab").iterator():
            services.schedule_sync_periodic_task(schedule=schedule)
            count += 1
        self.stdout.write(f"Scheduler tasks in step for {count} schedule(s).")
