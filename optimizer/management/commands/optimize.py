import json
import logging
import re
import sys

import django
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from config import __version__
from optimizer import limits, pipeline, selectors, services
from optimizer.builtin_engine.catalogue import PRESETS, TECHNIQUES
from optimizer.builtin_engine.questions import ORDER as QUESTION_KEYS
from optimizer.engines import BuiltinEngine
from optimizer.forms import answer_text_validate, prompt_text_validate
from optimizer.models import ModelChoice, OptimizationRun, Prompt

GIVE_A_PROMPT = (
    "Give a prompt as an argument or on stdin (manage.py optimize 'text', or echo 'text' | manage.py "
    "optimize)"
)
EXIT_RATE_LIMITED = 75  # EX_TEMPFAIL in sysexits.h: a temporary refusal, try again later


class Command(BaseCommand):
    help = (
        "Optimize a prompt from the command line (or from stdin when no text is given) and print the "
        "result; the run is saved in the user's history. It runs here, without a task worker. "
        f"Exit status 0: done; 2: bad arguments; {EXIT_RATE_LIMITED}: RUNS_PER_MINUTE reached for the "
        "user, nothing was started (the message says when to retry); 1: any other failure."
    )

    def add_arguments(self, parser):
        parser.add_argument("text", nargs="?", help="The prompt; read from stdin when omitted or '-'.")
        self.add_settings_arguments(
            parser, user_help="Whose history the run is saved in (default: the first superuser)."
        )
        parser.add_argument(
            "--answer", action="append", default=[], metavar="KEY=VALUE",
            help="An answer to one of the clarifying questions a run lists (repeatable), e.g. "
            "--answer audience='new hires in support'.",
        )  # fmt: skip
        parser.add_argument("--title", default="")
        parser.add_argument("--json", action="store_true", help="Print the whole run as JSON.")

    @staticmethod
    def add_settings_arguments(parser, *, user_help: str, type_help: str | None = None) -> None:
        """The options a run's settings come from, and ``--user``: this command's and ``batch``'s."""
        parser.add_argument("--type", default="general", choices=Prompt.Type.values, help=type_help)
        parser.add_argument("--preset", default="auto", choices=["auto", "none", *PRESETS])
        parser.add_argument(
            "--technique", action="append", default=[], metavar="SLUG",
            help="A technique to apply (repeatable): " + ", ".join(TECHNIQUES),
        )  # fmt: skip
        parser.add_argument(
            "--engine", default="auto", choices=["auto", "builtin", "llm"],
            help="auto: a language model when one is enabled, else the built-in engine.",
        )  # fmt: skip
        parser.add_argument("--model", help="provider/model_id of an enabled model (implies --engine llm).")
        parser.add_argument("--no-keep-spans", action="store_true", help="Allow placeholders etc. to change.")
        parser.add_argument("--user", help=user_help)

    def settings_check(self, options) -> None:
        """Refuse contradictory or unknown settings options (exit status 2): both commands' checks."""
        if options["engine"] == "builtin" and options["model"]:
            raise CommandError(
                "--model picks a language model and --engine builtin refuses them: give one of the two.",
                returncode=2,
            )
        unknown = [slug for slug in options["technique"] if slug not in TECHNIQUES]
        if unknown:
            raise CommandError(
                f"Unknown technique {unknown[0]!r}. Known: {', '.join(TECHNIQUES)}.", returncode=2
            )
        if options["preset"] == "none" and not options["technique"]:
            raise CommandError("--preset none needs at least one --technique.", returncode=2)

    def get_version(self) -> str:
        return f"Prompt Optimizer {__version__} (Django {django.get_version()})"

    def handle(self, *args, **options):
        httpx_log = logging.getLogger("httpx")
        quiet = httpx_log.level
        if options["verbosity"] >= 2:  # each HTTP request to a provider, as httpx logs it
            httpx_log.setLevel(logging.INFO)
        try:
            self._optimize(options)
        finally:
            httpx_log.setLevel(quiet)

    def _optimize(self, options) -> None:
        self.settings_check(options)
        text = options["text"]
        if text in (None, "-"):
            if sys.stdin.isatty():
                raise CommandError(f"{GIVE_A_PROMPT}.", returncode=2)
            text = sys.stdin.read()
        try:
            text = prompt_text_validate(text)
        except ValidationError as error:
            message = f"{GIVE_A_PROMPT}: this one is empty." if error.code == "empty" else error.messages[0]
            raise CommandError(message, returncode=2) from None
        model = self._model(options["engine"], options["model"])
        builtin_only = pipeline.engine_version({"model": model}) == BuiltinEngine.version
        run_settings = services.run_settings_build(
            prompt_type=options["type"],
            preset=options["preset"],
            techniques=options["technique"],
            model=model,
            keep_spans=not options["no_keep_spans"],
            answers=self._answers(options["answer"], builtin_only=builtin_only),
        )
        owner = self._user(options["user"])
        try:
            with limits.run_limit_held(owner=owner):
                run = services.run_submit(
                    owner=owner, text=text, title=options["title"], run_settings=run_settings, enqueue=False
                )
        except limits.RunLimitExceeded as refusal:
            raise CommandError(refusal.message, returncode=EXIT_RATE_LIMITED) from None
        if run.status == OptimizationRun.Status.QUEUED:
            pipeline.run_optimization(run_id=run.pk)  # here and now, no worker needed
        run.refresh_from_db()
        if run.status != OptimizationRun.Status.DONE:
            raise CommandError(run.error or "The optimization failed.")
        self._print(run, as_json=options["json"])

    def _user(self, username: str | None):
        users = get_user_model().objects
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(
                    f"No user named {username!r}. Create one with manage.py createsuperuser.", returncode=2
                )
            return user
        user = users.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise CommandError("No superuser yet: run make run once, or pass --user NAME.", returncode=2)
        return user

    def _answers(self, given: list[str], *, builtin_only: bool) -> dict[str, str]:
        """The author's answers; with the built-in engine only the keys it asks are accepted (a
        model's questions may use keys of its own)."""
        answers = {}
        for item in given:
            key, sign, value = item.partition("=")
            if not sign or not key.strip():
                raise CommandError(
                    f"--answer {item!r} is not KEY=VALUE. Give the question's key, an equals sign and your "
                    "answer, e.g. --answer audience='new hires'; the keys are listed after a run.",
                    returncode=2,
                )
            key = key.strip()
            if not value.strip():
                raise CommandError(
                    f"--answer {key}= has no answer: write it after the equals sign, "
                    f"e.g. --answer {key}='...'.",
                    returncode=2,
                )
            if builtin_only and key not in QUESTION_KEYS:
                raise CommandError(
                    f"--answer {key}: the built-in engine asks no question with that key. Its keys are "
                    f"{', '.join(QUESTION_KEYS)}; a run lists the ones it asks.",
                    returncode=2,
                )
            try:
                answers[key] = answer_text_validate(value)
            except ValidationError as error:
                raise CommandError(f"--answer {key}: {error.messages[0]}", returncode=2) from None
        return answers

    def _model(self, engine: str, model: str | None) -> str:
        if model:
            return str(_model_named(model).pk)
        if engine == "llm" and not pipeline.llm_models_available():
            raise CommandError(
                "--engine llm needs an enabled language model: set an API key (see .env.example) or add "
                "one in the admin.",
                returncode=2,
            )
        return "builtin" if engine == "builtin" else "auto"

    def _print(self, run: OptimizationRun, *, as_json: bool) -> None:
        if as_json:
            row = selectors.run_export_row(run) | {
                "scores": run.scores,
                "techniques": run.techniques,
                "deconstruction": run.deconstruction,
            }
            self.stdout.write(json.dumps(row, ensure_ascii=False, indent=2))
            return
        self.stdout.write(run.optimized_text.rstrip("\n"))
        engine = run.get_engine_display() + (f" ({run.provider} / {run.model})" if run.model else "")
        summary = f"Checklist {run.score_before} → {run.score_after} · {engine} · cost ${run.cost:.6f}"
        if run.cached:
            summary += " · from the result cache"
        if run.degraded_reason:
            summary += f" · degraded: {run.degraded_reason}"
        self.stderr.write(summary)
        if run.questions:
            self.stderr.write("\nOpen questions (only you can answer them):")
            for question in run.questions:
                examples = "; ".join(question.get("examples", []))
                self.stderr.write(
                    f"  {question['key']}: {question['question']}"
                    + (f" (e.g. {examples})" if examples else "")
                )
            first = run.questions[0]["key"]
            self.stderr.write(
                f"Answer them by running the same command again with --answer {first}=... (repeatable)."
            )


def _spelled(name: str) -> str:
    """A model's name as the command compares it: any case, spaces around the slash or not."""
    return re.sub(r"\s*/\s*", "/", name.strip()).casefold()


def _model_named(given: str) -> ModelChoice:
    """The enabled model that ``given`` names, written as the pages write it ("OpenAI / gpt-5") or
    as provider/model_id, in any case; a clear message listing the enabled ones otherwise."""
    usable = list(ModelChoice.objects.usable().select_related("provider"))
    names = {choice.pk: f"{choice.provider.name} / {choice.model_id}" for choice in usable}
    found = [choice for choice in usable if _spelled(names[choice.pk]) == _spelled(given)]
    if len(found) == 1:
        return found[0]
    if found:
        raise CommandError(
            f"{given!r} names {len(found)} models: {', '.join(names[c.pk] for c in found)}. Rename one "
            "of their providers in the admin.",
            returncode=2,
        )
    if not usable:
        raise CommandError(
            f"No enabled model {given!r}: no language model is enabled. Set an API key (see "
            ".env.example) or add one in the admin.",
            returncode=2,
        )
    raise CommandError(
        f"No enabled model {given!r}. Enabled: {', '.join(names.values())} (as provider/model, in any case).",
        returncode=2,
    )
