import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from optimizer.llm.fake_provider import FakeProvider


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError
    return number


class Command(BaseCommand):
    help = (
        "Run a fake OpenAI-compatible (and Anthropic Messages) provider on loopback that answers any "
        "requested JSON schema, for demos, tests and benchmarks. Point a provider's base URL at the "
        "printed address. Script per-request failures with POST /_fake/script."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8088)
        parser.add_argument("--latency", type=float, default=0.0, help="Seconds to wait before each answer.")
        parser.add_argument(
            "--fail-rate",
            type=_fraction,
            default=0.0,
            help="Fraction (0-1) of requests answered with an error.",
        )
        parser.add_argument(
            "--fail-status", type=int, default=500, help="HTTP status of those errors (e.g. 429, 503, 529)."
        )
        parser.add_argument("--retry-after", type=float, help="Send Retry-After (seconds) with those errors.")
        parser.add_argument(
            "--hang-rate", type=_fraction, default=0.0, help="Fraction of requests never answered."
        )
        parser.add_argument(
            "--malformed-rate", type=_fraction, default=0.0, help="Fraction answered with invalid JSON."
        )

    def handle(self, *args, **options):
        if options["latency"] < 0:
            raise CommandError("--latency must be 0 or more seconds.")
        if not 400 <= options["fail_status"] <= 599:
            raise CommandError("--fail-status must be an HTTP error status, 400 to 599.")
        if options["fail_rate"] + options["hang_rate"] + options["malformed_rate"] > 1:
            raise CommandError("--fail-rate, --hang-rate and --malformed-rate add up to more than 1.")
        try:
            fake = FakeProvider(
                options["host"],
                options["port"],
                latency=options["latency"],
                fail_rate=options["fail_rate"],
                fail_status=options["fail_status"],
                retry_after=options["retry_after"],
                hang_rate=options["hang_rate"],
                malformed_rate=options["malformed_rate"],
            )
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']} ({exc.strerror})."
            ) from None
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        fake.start()
        self.stdout.write(self.style.SUCCESS(f"Fake provider answering at {fake.url}"))
        self.stdout.write("  OpenAI-compatible: POST /v1/chat/completions · Anthropic: POST /v1/messages")
        self.stdout.write(
            f"  Demo: OPENAI_BASE_URL={fake.url} make run (gpt-5-nano, gpt-5-mini and gpt-5 here, "
            "priced at OpenAI's list prices since genai-prices knows those names)"
        )
        self.stdout.flush()
        stop.wait()
        fake.stop()
        self.stdout.write("Stopped.")
