from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError

from config.env import env_str
from optimizer.services import admin_password_file, first_superuser_ensure


class Command(BaseCommand):
    help = (
        "Create the first superuser when none exists (username from ADMIN_USERNAME, default 'admin'). "
        "The password comes from ADMIN_PASSWORD, or is generated, printed once and saved in the data "
        "directory."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--username", help="Username for the new superuser (default: ADMIN_USERNAME or admin)."
        )
        parser.add_argument("--email", help="Email address (default: ADMIN_EMAIL or none).")

    def handle(self, *args, **options):
        try:
            username = options["username"] or env_str("ADMIN_USERNAME", "admin")
            email = options["email"] or env_str("ADMIN_EMAIL", "")
            password = env_str("ADMIN_PASSWORD")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        try:
            result = first_superuser_ensure(username=username, email=email, password=password)
        except ValidationError as exc:
            raise CommandError("Cannot create the superuser: " + " ".join(exc.messages)) from None

        if not result.created:
            self.stdout.write(f"A superuser exists already ({result.username}); nothing changed.")
        elif result.generated_password:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created superuser {result.username!r} with password: {result.generated_password}"
                )
            )
            self.stdout.write(f"It is shown only this once; it is also saved in {admin_password_file()}.")
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Created superuser {result.username!r} with ADMIN_PASSWORD.")
            )
