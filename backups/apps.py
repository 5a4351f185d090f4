from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self):
        post_migrate.connect(_schedules_ensure, sender=self)


def _schedules_ensure(using="default", **_kwargs) -> None:
    """The daily backup (and the other schedules) exist once migrate has run, before any worker."""
    from optimizer import runqueue

    runqueue.sweep_schedule_ensure()
