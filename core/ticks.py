"""Once per tick: a periodic task runs at most once for each of its scheduled times.

Beat marks each message it sends with the entry, the scheduled time the run is for
(`entry_tick`, the same whichever scheduler computes it) and its lease token. A
worker runs the first message to claim a tick and drops any other: a leader that
was paused or cut from the database and sends late, or a new leader that fires
again a tick whose run the old one had sent but not yet saved, cannot run a
periodic task twice for one tick. A message delivered again (its worker died)
keeps its claim.
"""

import datetime
import logging
import zoneinfo

from celery.contrib.django.task import DjangoTask
from celery.exceptions import Ignore
from croniter import croniter

logger = logging.getLogger(__name__)

# A cron run fired up to this early counts as the run time it is for (beat wakes a little early).
EARLY_SECONDS = 1

ENTRY_HEADER, TICK_HEADER, TOKEN_HEADER = "beat_entry", "beat_tick", "beat_token"


def entry_tick(model, now: datetime.datetime) -> datetime.datetime:
    """The scheduled time a run of periodic task `model` at `now` is for: the same for every
    scheduler that fires that run, whatever run time it last saw."""
    if model.crontab_id is not None:
        cron = model.crontab
        fields = (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week)
        local = (now + datetime.timedelta(seconds=EARLY_SECONDS)).astimezone(zoneinfo.ZoneInfo(str(cron.timezone)))
        # day_or=False: a run needs both day fields to match, as celery's crontab has it.
        return croniter(" ".join(fields), local, day_or=False).get_prev(datetime.datetime)
    if model.clocked_id is not None:
        return model.clocked.clocked_time
    if model.interval_id is not None:
        every = model.interval.schedule.run_every.total_seconds()
        return datetime.datetime.fromtimestamp(now.timestamp() // every * every, tz=datetime.UTC)
    return now.replace(second=0, microsecond=0)  # a solar event: at most one run a minute


def claim_tick(*, entry: str, tick: datetime.datetime, task_id: str, token: int) -> bool:
    """Whether the message `task_id` is the one to run `entry` for `tick` (the first to claim
    it, or the same message delivered again after its worker died)."""
    from .models import BeatTick  # this module is loaded with the Celery app, before Django's apps

    claimed, _ = BeatTick.objects.get_or_create(entry=entry, tick=tick, defaults={"task_id": task_id, "token": token})
    return claimed.task_id == task_id


class OncePerTick(DjangoTask):
    """Every task of the service (Celery's Django task, with `delay_on_commit`): a message beat
    sent runs only if it is the one claiming its tick."""

    def before_start(self, task_id, args, kwargs) -> None:
        tick = self.request.get(TICK_HEADER)
        if tick is None:  # not sent by beat
            return
        entry, token = self.request.get(ENTRY_HEADER), self.request.get(TOKEN_HEADER)
        if not claim_tick(entry=entry, tick=datetime.datetime.fromisoformat(tick), task_id=task_id, token=token):
            logger.warning("Beat: %s for %s already ran; dropping the message from lease token %s.", entry, tick, token)
            raise Ignore()
