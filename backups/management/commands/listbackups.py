from django.core.management.base import BaseCommand

from backups import services
from backups.models import Backup


class Command(BaseCommand):
    help = (
        "List the backups made on this site: number, when, status, size, trigger and file (or name "
        "in the backup storage), and whether it is encrypted."
    )

    def handle(self, *args, **options):
        backups = list(services.backups_listed())
        if not backups:
            self.stdout.write("No backup yet: make one with manage.py backup.")
            return
        for backup in backups:
            self.stdout.write(
                f"{backup.pk:>5}  {backup.started_at:%Y-%m-%d %H:%M}  {backup.get_status_display():<8}"
                f"{backup.size:>14,} B  {backup.get_trigger_display():<26}{backup.name}"
                + ("  [in the backup storage]" if backup.place == Backup.Place.STORAGE else "")
                + ("  [encrypted]" if backup.encrypted else "")
                + (f"  ({backup.error})" if backup.error else "")
            )
