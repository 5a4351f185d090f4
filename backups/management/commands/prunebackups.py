import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from backups import services
from backups.models import Backup


def _bounded(value, name: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` (the settings' own bounds), or exit 2 saying so."""
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
        raise CommandError(f"{name}: give a whole number from {low} to {high}, not {text!r}.", returncode=2)
    return int(text)


class Command(BaseCommand):
    help = (
        "Delete old backups: those older than --keep-days beyond the newest --keep-last (the newest "
        "good backup is always kept). Exit status 0: done; 2: bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("--keep-days", default=settings.BACKUP_KEEP_DAYS, help="0 to 3650.")
        parser.add_argument("--keep-last", default=settings.BACKUP_KEEP_LAST, help="1 to 1000.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would go, delete nothing.")

    def handle(self, *args, **options):
        rules = {
            "keep_days": _bounded(options["keep_days"], "--keep-days", 0, 3650),
            "keep_last": _bounded(options["keep_last"], "--keep-last", 1, 1000),
        }
        try:
            doomed = services.prune_plan(**rules) if options["dry_run"] else services.prune(**rules)
        except services.BackupError as error:
            raise CommandError(str(error), returncode=2) from None
        verb = "Would delete" if options["dry_run"] else "Deleted"
        for backup in doomed:
            self.stdout.write(
                f"{verb} {backup.name} ({backup.get_status_display()}, {backup.started_at:%Y-%m-%d})"
            )
        kept = Backup.objects.count() - (len(doomed) if options["dry_run"] else 0)
        self.stdout.write(f"{verb} {len(doomed)} backup(s); {kept} kept.")
