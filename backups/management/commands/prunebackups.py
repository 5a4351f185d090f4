from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from backups import services
from backups.models import Backup


class Command(BaseCommand):
    help = (
        "Delete old backups: those older than --keep-days beyond the newest --keep-last (the newest "
        "good backup is always kept). Exit status 0: done; 2: bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("--keep-days", type=int, default=settings.BACKUP_KEEP_DAYS)
        parser.add_argument("--keep-last", type=int, default=settings.BACKUP_KEEP_LAST)
        parser.add_argument("--dry-run", action="store_true", help="Say what would go, delete nothing.")

    def handle(self, *args, **options):
        rules = {"keep_days": options["keep_days"], "keep_last": options["keep_last"]}
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
