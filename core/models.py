from django.db import models


class LeaderLease(models.Model):
    """Who leads a role among processes that can all play it (celery beat among the schedulers).

    The holder renews it before `expires_at` (the database's clock); once that has passed
    anyone may take it, and `token` goes up by one with every change of holder, so the
    holder of a higher token is the later leader."""

    name = models.CharField(max_length=64, unique=True)
    holder = models.CharField(max_length=200, blank=True)
    token = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'nobody'} (token {self.token})"


class BeatTick(models.Model):
    """One run of a periodic task for one of its scheduled times: the first message of a tick
    to reach a worker runs, any other (from a scheduler that took over the lead) is dropped."""

    entry = models.CharField(max_length=200)
    tick = models.DateTimeField()
    task_id = models.CharField(max_length=255)
    token = models.BigIntegerField(help_text="The lease token of the scheduler that sent it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entry", "tick"], name="core_beattick_once")]
        indexes = [models.Index(fields=["created_at"], name="core_beattick_age")]

    def __str__(self) -> str:
        return f"{self.entry} at {self.tick:%Y-%m-%d %H:%M:%S}"
