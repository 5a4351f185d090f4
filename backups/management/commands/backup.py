from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backups import crypto, services


class Command(BaseCommand):
    help = (
        "Write a backup of the site's data (users, prompts, runs, providers, prices, budgets, usage "
        "records; never a session, a secret or a key) to a ZIP (or JSON Lines) file, owner-only "
        "(encrypted when BACKUP_ENCRYPTION_KEY is set), and print where, its size, rows and checksum. "
        "Exit status 0: done; 1: it could not be written; 2: bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", help="The file to write (default: a new file in BACKUP_DIR).")
        parser.add_argument("--note", default="", help="A note kept with the backup's record.")
        parser.add_argument(
            "--format",
            choices=services.FORMATS,
            default="zip",
            help="zip (default): a member per model and a manifest; jsonl: one JSON Lines file, the "
            "rows model after model and the manifest as its last line. Both restore the same way.",
        )
        parser.add_argument(
            "--generate-key",
            action="store_true",
            help="Print a new key for BACKUP_ENCRYPTION_KEY and exit (no backup is made).",
        )

    def handle(self, *args, **options):
        if options["generate_key"]:
            self.stdout.write(crypto.key_generate())
            self.stderr.write(
                "Set BACKUP_ENCRYPTION_KEY to the line above on every machine that backs up or "
                "restores, and keep a copy apart from the backups: without it they cannot be restored."
            )
            return
        output = Path(options["output"]).expanduser() if options["output"] else None
        if output is not None:
            if output.exists():
                raise CommandError(f"{output} exists: give a new file name.", returncode=2)
            if not output.parent.is_dir():
                raise CommandError(f"{output.parent} is not a folder: create it first.", returncode=2)
        try:
            backup = services.backup_create(
                output=output, note=options["note"], file_format=options["format"]
            )
        except services.BackupError as error:
            raise CommandError(str(error), returncode=1) from None
        rows = sum(backup.counts.values())
        self.stdout.write(f"Backup written to {backup.name}" + (" (encrypted)" if backup.encrypted else ""))
        self.stdout.write(f"  {backup.size:,} bytes, {rows:,} rows, sha256 {backup.sha256}")
        for label, count in backup.counts.items():
            self.stdout.write(f"  {label}: {count:,}")
