import logging

from django.apps import apps
from django.core.management.base import BaseCommand

from config.celery import app as celery_app
from config.startup import refuse_without_secrets

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Run the scheduler process: celery beat firing the schedules (django-celery-beat's "
        "DatabaseScheduler) and, beside it, the dispatcher of due delayed HTTP jobs. Run exactly one."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--loglevel", default="INFO", help="Log level of celery beat.")

    def handle(self, *args, loglevel: str, **options) -> None:
        refuse_without_secrets()
        dispatcher = None
        if apps.is_installed("jobs"):
            from jobs.dispatcher import start_dispatcher_thread

            dispatcher = start_dispatcher_thread()
            logger.info("Jobs dispatcher started.")
        try:
            celery_app.Beat(loglevel=loglevel).run()  # returns when beat is told to stop (SIGTERM, SIGINT)
        finally:
            if dispatcher is not None:
                thread, stop = dispatcher
                stop.set()
                thread.join(timeout=10)
                logger.info("Jobs dispatcher stopped.")
