import ctypes
import signal
import socket
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection

from config.env import env_int, env_str
from optimizer.services import admin_password_file

READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
PR_SET_PDEATHSIG = 1
ALL_INTERFACES = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - names to recognise
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM if this launcher dies, even by SIGKILL,
    so no orphaned server keeps the port and the database open."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_child(command: list[str]) -> subprocess.Popen:
    # A process group of its own: Ctrl-C reaches only this launcher, which then stops each child
    # with exactly one SIGTERM (a qcluster hit by SIGINT and SIGTERM at once can hang on stop).
    return subprocess.Popen(command, process_group=0, preexec_fn=_die_with_parent)


class Command(BaseCommand):
    help = (
        "Run the web server (gunicorn) and the task worker (django-q2 qcluster) together. "
        "HOST and PORT choose the address; Ctrl-C stops both."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", help="Address to listen on (default: HOST or 127.0.0.1).")
        parser.add_argument("--port", help="Port to listen on (default: PORT or 8000).")

    def handle(self, *args, **options):
        host, port, web_workers = self._read_options(options)
        self._check_port_free(host, port)
        self._check_database_answers()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: stop.set())

        worker_command = [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"]
        children = {
            "web server": _start_child(self._web_command(host, port, web_workers)),
            "task worker": _start_child(worker_command),
        }
        try:
            if self._wait_until_listening(host, port, children, stop):
                self._print_banner(host, port)
            while not stop.wait(0.5):
                died = [name for name, child in children.items() if child.poll() is not None]
                if died:
                    raise CommandError(
                        f"The {died[0]} stopped unexpectedly (see its output above); stopped the rest."
                    )
        finally:
            self._stop_all(children)
        self.stdout.write("Stopped the web server and the task worker.")

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

    def _check_database_answers(self) -> None:
        """Both children need PostgreSQL: say in one line that it does not answer, and where, not
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
                "Start PostgreSQL there or correct DATABASE_URL, then run make run again."
            ) from None

    def _web_command(self, host: str, port: int, web_workers: int) -> list[str]:
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--chdir", str(settings.BASE_DIR),
            "--bind", bind,
            "--workers", str(web_workers),
            "--threads", "4",
            "--timeout", "60",
            "--graceful-timeout", "10",
            "--log-level", "warning",
            "--error-logfile", "-",
        ]  # fmt: skip

    def _wait_until_listening(self, host, port, children, stop) -> bool:
        target = ALL_INTERFACES.get(host, host)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not stop.is_set():
            if any(child.poll() is not None for child in children.values()):
                return False
            try:
                socket.create_connection((target, port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.2)
        return False

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
        self.stdout.write("  Web server and task worker are running; press Ctrl-C to stop both.\n")
        self.stdout.flush()

    def _stop_all(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
