import signal
import threading

from django.core.management.base import BaseCommand

from core.startup import refuse_without_secrets
from jobs.dispatcher import run_dispatcher


class Command(BaseCommand):
    help = "Claim due delayed HTTP jobs and queue them for the workers, until stopped (SIGINT or SIGTERM)."

    def handle(self, *args, **options) -> None:
        refuse_without_secrets()
        stop = threading.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: stop.set())
        self.stdout.write("Dispatching due jobs; Ctrl-C stops.")
        run_dispatcher(stop)
