from django.core.management.base import BaseCommand

from optimizer import runqueue


class Command(BaseCommand):
    help = (
        "Create the task worker's schedules that are missing (the recovery sweep, the budgets' "
        "reconciliation, the daily backup); leaves existing ones as an administrator set them."
    )

    def handle(self, *args, **options):
        runqueue.sweep_schedule_ensure()
        from django_q.models import Schedule

        for schedule in Schedule.objects.order_by("name"):
            when = f"{schedule.next_run:%Y-%m-%d %H:%M}"
            self.stdout.write(f"{schedule.name}: every {schedule.minutes} minute(s), next {when}")
