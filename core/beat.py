"""Celery beat's scheduler: django-celery-beat's, riding out a database that cannot be reached.

django-celery-beat survives most database errors, but not one while it reads the
schedules, which ends beat's loop and so the scheduler process: a PostgreSQL restart
at the wrong moment would stop every schedule until someone restarted it.
"""

import datetime
import logging

from django.db import DatabaseError, InterfaceError, connection
from django_celery_beat import schedulers

logger = logging.getLogger(__name__)

# Seconds to wait after the database failed before beat tries again.
RETRY_SECONDS = 1.0


class DatabaseScheduler(schedulers.DatabaseScheduler):
    def tick(self, *args, **kwargs) -> float:
        try:
            return super().tick(*args, **kwargs)
        except (DatabaseError, InterfaceError) as error:
            logger.warning("Beat: the database cannot be reached, trying again in %g s: %s", RETRY_SECONDS, error)
            connection.close()
            # The read of the schedules failed half-way: read them all again on the next tick.
            self._last_full_sync = datetime.datetime.min
            return RETRY_SECONDS
