"""The scheduler process: celery beat firing the schedules (when this process holds the beat
lease), and beside it the loops `SCHEDULER_LOOPS` names (the dispatcher of due jobs, the topic
webhooks' relay), always. Run as many as you like."""

import functools
import logging
import signal
import threading

from celery import current_app
from celery.beat import EmbeddedService
from celery.utils.imports import symbol_by_name
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from core.leader import Lease, keep_refreshing
from core.startup import refuse_without_secrets

logger = logging.getLogger(__name__)

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class Command(BaseCommand):
    help = (
        "Run the scheduler process: celery beat firing the schedules (django-celery-beat's "
        "DatabaseScheduler) while this process leads, and, beside it, the loops SCHEDULER_LOOPS names "
        "(the dispatcher of due delayed HTTP jobs, the relay of topic webhooks). Any number may run: "
        "one leads beat at a time, the others take over if it stops."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--loglevel", default="INFO", help="Log level of celery beat.")

    def handle(self, *args, loglevel: str, **options) -> None:
        refuse_without_secrets()
        for name in ("celery", "django_celery_beat"):
            logging.getLogger(name).setLevel(loglevel.upper())
        # Beat and the dispatcher run in threads; the main thread only waits for a stop signal.
        # Blocking the signals first means no handler ever interrupts a thread in the middle of a
        # database call (beat's own handler syncs the schedule from inside the handler, which can
        # deadlock on the connection the interrupted code holds).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        app = current_app._get_current_object()
        lease = Lease("beat", seconds=settings.SCHEDULER_LEASE_SECONDS)
        lease_stop = threading.Event()
        refresher = threading.Thread(
            target=keep_refreshing,
            args=(lease, lease_stop),
            kwargs={"every": settings.SCHEDULER_LEASE_SECONDS / 5},
            name="beat lease",
        )
        refresher.start()
        scheduler = functools.partial(symbol_by_name(app.conf.beat_scheduler), lease=lease)
        beat = EmbeddedService(app, thread=True, scheduler_cls=scheduler)
        beat.start()
        logger.info("Beat started (leads while it holds the beat lease, as %s).", lease.holder)
        loops = [import_string(name)() for name in settings.SCHEDULER_LOOPS]
        names = ", ".join(thread.name for thread, _ in loops)
        logger.info("Scheduler loops started: %s.", names)
        threads: list[threading.Thread] = [beat, *(thread for thread, _ in loops), refresher]

        received = None
        while received is None and all(thread.is_alive() for thread in threads):
            received = signal.sigtimedwait(STOP_SIGNALS, 1.0)
        if received is not None:
            logger.info("Received %s, stopping.", signal.Signals(received.si_signo).name)
        died = next((thread.name for thread in threads if not thread.is_alive()), None)  # before stopping the rest

        beat.service.stop()  # beat leaves its loop within its max interval and saves the schedule
        for _, stop in loops:
            stop.set()
        lease_stop.set()  # then the lease is given up, for a standby to take over at once
        for thread in threads:
            thread.join(timeout=30)
        logger.info("Scheduler loops stopped: %s.", names)
        if received is None:
            raise CommandError(f"The {died} thread stopped unexpectedly; see the log above.")
