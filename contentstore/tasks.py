import logging

from celery import shared_task

from . import services
from .models import Schedule

logger = logging.getLogger(__name__)


@shared_task(name="contentstore.tasks.schedule_fire")
def schedule_fire(schedule_id: int) -> None:
    """Fire one schedule (queued by its periodic task or by `POST schedule/{id}/send/`)."""
    schedule = Schedule.objects.filter(pk=schedule_id).first()
    if schedule is None:
        logger.warning("Schedule %s no longer exists; nothing to fire.", schedule_id)
        return
    services.schedule_fire(schedule=schedule)
