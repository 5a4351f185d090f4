import socket
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from config.env import env_int, env_str
from config.metrics import multiprocess_dir_prepare
from optimizer.management.commands.worker import Command as WorkerCommand
from optimizer.services import admin_password_file
from optimizer.supervisor import Child, Supervisor, stop_requested

ALL_INTERFACES = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - names to recognise
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Command(WorkerCommand):
    help = (
        "Run the web server (gunicorn) and both task workers (django-q2 qcluster) together, "
        "restarting any of them that stops. HOST and PORT choose the address; Ctrl-C stops all."
    )
    rerun_hint = "make run"

    def add_arguments(self, parser):
        parser.add_argument("--host", help="Address to listen on (default: HOST or 127.0.0.1).")
        parser.add_argument("--port", help="Port to listen on (default: PORT or 8000).")

    def handle(self, *args, **options):
        host, port, web_workers = self._read_options(options)
        self._check_port_free(host, port)
        self.check_database_answers()
        stop = stop_requested()
        # gunicorn's workers write their metrics to files that /metrics adds up (prometheus-client's
        # multiprocess mode); a previous run's files would be counted in, so the folder starts empty.
        metrics_dir = multiprocess_dir_prepare(settings.PROMETHEUS_MULTIPROC_DIR)
        web = Child(
            "web server",
            self._web_command(host, port, web_workers),
            {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        )
        supervisor = Supervisor([web, *self.task_worker_children()], say=self.say)
        banner_shown = False

        def show_banner_once_listening() -> None:
            nonlocal banner_shown
            if not banner_shown and self._listening(host, port):
                self._print_banner(host, port)
                banner_shown = True

        supervisor.run(stop, on_tick=show_banner_once_listening)
        self.stdout.write(f"Stopped {supervisor.names}.")

    def _read_options(self, options) -> tuple[str, int, int]:
        """Host, port and web worker count, all checked before anything starts."""
        try:
            host = options["host"] or env_str("HOST", "127.0.0.1")
            from_option = {"PORT": options["port"]} if options["port"] else None
            port = env_int("PORT", 8000, minimum=1, maximum=65535, environ=from_option)
            web_workers = env_int("WEB_CONCURRENCY", 2, minimum=1, maximum=64)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        return host, port, web_workers

    def _check_port_free(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise CommandError(
                    f"Cannot listen on {host}:{port} ({exc.strerror}). Stop whatever uses it, "
                    f"or choose another port: PORT={port + 1} make run"
                ) from None

    def _web_command(self, host: str, port: int, web_workers: int) -> list[str]:
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--chdir", str(settings.BASE_DIR),
            "--config", "python:config.metrics",  # its child_exit hook
            "--bind", bind,
            "--workers", str(web_workers),
            "--threads", "4",
            "--timeout", "60",
            "--graceful-timeout", "10",
            "--log-level", "warning",
            "--error-logfile", "-",
        ]  # fmt: skip

    def _listening(self, host: str, port: int) -> bool:
        try:
            socket.create_connection((ALL_INTERFACES.get(host, host), port), timeout=1).close()
        except OSError:
            return False
        return True

    def _print_banner(self, host: str, port: int) -> None:
        shown_host = "localhost" if host in LOOPBACK or host in ALL_INTERFACES else host
        superuser = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        self.stdout.write(self.style.SUCCESS(f"\nPrompt Optimizer is running at http://{shown_host}:{port}/"))
        if superuser is not None:
            login = f"  Log in as {superuser.get_username()!r}"
            if admin_password_file().exists():
                login += f"; its generated password is in {admin_password_file()}"
            self.stdout.write(login)
        else:
            self.stdout.write("  No superuser yet: create one with `manage.py ensure_superuser`.")
        if host not in LOOPBACK and env_str("ALLOWED_HOSTS") is None:
            self.stdout.write(
                self.style.WARNING(
                    "  Listening beyond this machine: set ALLOWED_HOSTS to the name people will use."
                )
            )
        self.stdout.write(
            "  Web server and task workers are running; one that stops is restarted. "
            "Press Ctrl-C to stop them all.\n"
        )
        self.stdout.flush()
