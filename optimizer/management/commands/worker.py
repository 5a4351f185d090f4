import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection

from optimizer.supervisor import Child, Supervisor, stop_requested


class Command(BaseCommand):
    help = (
        "Run the task workers without the web server, for machines that only work through the queue: "
        "the django-q2 cluster for model runs and the one for the fast queue (built-in runs, the "
        "recovery sweep), each restarted when it stops. Ctrl-C or SIGTERM stops both."
    )
    rerun_hint = "manage.py worker"  # what the database message tells a person to run again

    def handle(self, *args, **options):
        self.check_database_answers()
        stop = stop_requested()
        supervisor = Supervisor(self.task_worker_children(), say=self.say)
        self.stdout.write(
            f"Starting {supervisor.names} ({settings.TASK_WORKERS} and {settings.FAST_TASK_WORKERS} "
            "processes); one that stops is restarted. Press Ctrl-C to stop them."
        )
        self.stdout.flush()
        supervisor.run(stop)
        self.stdout.write(f"Stopped {supervisor.names}.")

    def task_worker_children(self) -> list[Child]:
        """The two clusters: django-q2 runs the one that Q_CLUSTER_NAME names."""
        qcluster = [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"]
        return [
            Child("task worker", qcluster, {"Q_CLUSTER_NAME": settings.Q_CLUSTER["name"]}),
            Child("fast task worker", qcluster, {"Q_CLUSTER_NAME": settings.FAST_QUEUE}),
        ]

    def say(self, line: str) -> None:
        self.stderr.write(line, style_func=self.style.WARNING)
        self.stderr.flush()

    def check_database_answers(self) -> None:
        """Every child needs PostgreSQL: say in one line that it does not answer, and where, not
        in a traceback from each child. (SQLite is opened earlier, by the system checks.)"""
        try:
            connection.ensure_connection()
        except OperationalError as exc:
            # libpq's first line ends with the cause ("... port 5432 failed: Connection refused").
            reason = str(exc).strip().splitlines()[0].rpartition("failed: ")[2]
            database = connection.settings_dict
            host, port = database.get("HOST") or "localhost", database.get("PORT") or 5432
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise CommandError(
                f"The database in DATABASE_URL does not answer at {address} ({reason}). "
                f"Start PostgreSQL there or correct DATABASE_URL, then run {self.rerun_hint} again."
            ) from None
