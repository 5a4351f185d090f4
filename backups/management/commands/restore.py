import re
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backups import services
from backups.models import Backup


class Command(BaseCommand):
    help = (
        "Restore a backup (a file, or the number manage.py listbackups shows): it is verified first, "
        "what would change is printed, a safety backup of the data now is taken, then every row is "
        "replaced in one transaction. Exit status 0: restored (or, with --dry-run, it could be); "
        "1: refused, the message says why, nothing changed; 2: bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "backup",
            help="The backup's file, or its number (or name in the backup storage) in manage.py listbackups.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Verify and show what would change.")
        parser.add_argument("--yes", action="store_true", help="Restore without asking.")

    def handle(self, *args, **options):
        source = self._source(options["backup"])
        try:
            plan = services.restore_plan(source)
        except services.BackupError as error:
            raise CommandError(str(error), returncode=1) from None
        manifest = plan.manifest.data
        self.stdout.write(
            f"{self._shown(source)}: made {manifest['created_at']} on {manifest['engine']} by version "
            f"{manifest['app_version']}; verified."
        )
        self.stdout.write(f"  {'':<28}{'now':>12}{'in the backup':>16}")
        for label in services.MODELS:
            self.stdout.write(f"  {label:<28}{plan.current[label]:>12,}{plan.incoming[label]:>16,}")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was changed.")
            return
        if not options["yes"]:
            if not sys.stdin.isatty():
                raise CommandError("Not restored: confirm with --yes (no terminal to ask on).", returncode=1)
            answer = input("Replace all of the data above with the backup's? Type 'yes' to restore: ")
            if answer.strip().lower() != "yes":
                raise CommandError("Not restored: nothing was changed.", returncode=1)
        try:
            _plan, safety = services.restore(source)
        except services.BackupError as error:
            raise CommandError(str(error), returncode=1) from None
        if safety is not None:
            self.stdout.write(f"Safety backup of the data before: {safety.name}")
        self.stdout.write(f"Restored {sum(plan.incoming.values()):,} rows from {self._shown(source)}.")

    def _source(self, given: str) -> Backup | Path:
        if re.fullmatch(r"[0-9]+", given) and not Path(given).exists():
            backup = Backup.objects.filter(pk=int(given), status=Backup.Status.DONE).first()
            if backup is None:
                raise CommandError(
                    f"No finished backup number {given}: see manage.py listbackups.", returncode=2
                )
            return backup
        path = Path(given).expanduser()
        if not path.is_file():
            # A backup kept in the backup storage, by the name listbackups shows.
            backup = Backup.objects.filter(name=given, status=Backup.Status.DONE).first()
            if backup is not None:
                return backup
            raise CommandError(f"{path} is not a file: give a backup's file or number.", returncode=2)
        return path

    def _shown(self, source: Backup | Path) -> str:
        return f"Backup {source.pk} ({source.name})" if isinstance(source, Backup) else str(source)
