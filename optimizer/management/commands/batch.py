import json
import logging
import os
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from tqdm import tqdm

from optimizer import pipeline, runqueue, services
from optimizer.batches import selectors
from optimizer.batches.estimate import estimate
from optimizer.batches.parsing import BatchInputError, Parsed, parse_file
from optimizer.batches.services import batch_create, batch_start, dispatch
from optimizer.engines import BuiltinEngine
from optimizer.management.commands import optimize
from optimizer.models import Batch, OptimizationRun

logger = logging.getLogger(__name__)

RunStatus = OptimizationRun.Status
GIVE_A_FILE = (
    "Give the file to read (CSV with a prompt column, a JSON array, JSON Lines, or text with one prompt per "
    "line), or - to read it from stdin: manage.py batch prompts.csv, or manage.py batch - < prompts.csv"
)
EXIT_ITEMS_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
POLL_S = 0.5  # how often the bar is redrawn, and how long --wait sleeps when it found nothing to run
COUNTS = ("waiting", "queued", "running", "done", "degraded", "cached", "failed", "duplicates", "deleted")
COST_PLACES = Decimal("0.00000001")  # as OptimizationRun.cost stores it


# optimize.Command: its checks of --engine, --model and --user with their messages, its -v 2 and
# --version, one place for both commands.
class Command(optimize.Command):
    help = (
        "Create a batch from a file (CSV, JSON, JSON Lines or text; - reads stdin) with the same checks as "
        "an upload on the Batch page, print the rows it skipped, and start it: the task workers run it "
        "(make run). --wait "
        "runs it here instead (other workers share the work) with a progress bar on stderr. Exit status "
        f"0: started (with --wait: every item done); 2: bad arguments or an unreadable file, nothing "
        f"stored; {EXIT_ITEMS_FAILED}: with --wait, some items failed or the batch was cancelled; "
        f"{EXIT_INTERRUPTED}: --wait interrupted (Ctrl-C); the batch stays running and the task workers "
        "finish it."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The file of prompts, or - to read them from stdin.")
        parser.add_argument(
            "--name", default="", help="The batch's name (default: the file's, and the time)."
        )
        self.add_settings_arguments(
            parser,
            user_help="Whose history the runs are saved in (default: the first superuser).",
            type_help='The type of the prompts whose row names none (a CSV type column, a JSON "type").',
        )
        parser.add_argument(
            "--wait", action="store_true",
            help="Run the items here, with a progress bar on stderr, until the batch is finished.",
        )  # fmt: skip
        parser.add_argument(
            "--json", action="store_true",
            help="Print the batch and its items' results as JSON on stdout (with --wait: once finished).",
        )  # fmt: skip

    def _optimize(self, options) -> None:
        """optimize.Command.handle calls this (``-v 2`` shows each HTTP request to a provider)."""
        queue_log = logging.getLogger("django-q")
        quiet = queue_log.level
        if options["verbosity"] < 2:  # not a line per item queued ("Enqueued [queue] 7")
            queue_log.setLevel(logging.WARNING)
        try:
            self._batch(options)
        finally:
            queue_log.setLevel(quiet)

    def _batch(self, options) -> None:
        # With --json, stdout holds the JSON alone: what a person reads goes to stderr.
        self.report = self.stderr if options["json"] else self.stdout
        run_settings = self._run_settings(options)
        owner = self._user(options["user"])
        source, data = self._read(options["file"])
        try:
            parsed = parse_file(source, data)
        except BatchInputError as error:
            raise CommandError(str(error), returncode=2) from None
        self._report_parsed(source, parsed)
        with transaction.atomic():  # stored and started, or neither
            try:
                batch = batch_create(
                    owner=owner, parsed=parsed, run_settings=run_settings, source=source, name=options["name"]
                )
            except ValidationError as error:
                raise CommandError(error.messages[0], returncode=2) from None
            if warning := self._budget_warning(batch, run_settings, owner):
                self.stderr.write(f"Warning: {warning}")
            batch = batch_start(batch=batch)  # its first items are queued as this commits
        to_run = batch.items.filter(duplicate_of=None).count()
        engine = "the built-in engine" if _builtin_only(run_settings) else "a language model"
        self.report.write(f"Batch {batch.pk} “{batch.name}” started: {to_run:,} to optimize with {engine}.")
        self.report.write(f"Its page: {_page(batch)}")
        if not options["wait"]:
            self.report.write("The task workers run it (make run, or manage.py worker on a worker machine).")
            self._print_json(batch, options["json"])
            return
        try:
            finished = self._wait(batch, to_run)
        except KeyboardInterrupt:
            left = selectors.progress(batch).remaining
            raise CommandError(
                f"Interrupted: batch {batch.pk} is still running, {_count(left, 'item')} left; the task "
                f"workers finish it (make run, or manage.py worker). Follow it on {_page(batch)}",
                returncode=EXIT_INTERRUPTED,
            ) from None
        batch.refresh_from_db()
        self._report_finished(batch, finished)
        self._print_json(batch, options["json"])
        if finished.failed:
            raise CommandError(
                f"{finished.failed:,} of {to_run:,} items failed. Their errors are in --json and on "
                f"{_page(batch)}, where Retry failed runs them again.",
                returncode=EXIT_ITEMS_FAILED,
            )
        if finished.remaining:
            raise CommandError(
                f"Batch {batch.pk} was cancelled with {_count(finished.remaining, 'item')} not run. Resume "
                f"it on {_page(batch)}",
                returncode=EXIT_ITEMS_FAILED,
            )

    # --- Before anything is stored --------------------------------------------------------------

    def _run_settings(self, options) -> dict:
        """The optimize command's checks, with its messages (exit status 2)."""
        self.settings_check(options)
        return services.run_settings_build(
            prompt_type=options["type"],
            preset=options["preset"],
            techniques=options["technique"],
            model=self._model(options["engine"], options["model"]),
            keep_spans=not options["no_keep_spans"],
        )

    def _read(self, given: str) -> tuple[str, bytes]:
        """(the name the parser tells the format from, the bytes); refused, without reading it all,
        when it holds more than BATCH_MAX_BYTES."""
        limit = settings.BATCH_MAX_BYTES
        too_large = "the limit is {limit:,} bytes (BATCH_MAX_BYTES). Split it into smaller batches."
        if given == "-":
            if sys.stdin.isatty():
                raise CommandError(f"{GIVE_A_FILE}.", returncode=2)
            data = sys.stdin.buffer.read(limit + 1)
            if len(data) > limit:
                raise CommandError(
                    f"stdin holds more than {limit:,} bytes; " + too_large.format(limit=limit), returncode=2
                )
            return "stdin", data
        path = Path(given)
        try:
            with path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > limit:
                    raise CommandError(
                        f"{given!r} is {size:,} bytes; " + too_large.format(limit=limit), returncode=2
                    )
                return path.name, handle.read(limit + 1)
        except FileNotFoundError:
            raise CommandError(f"No file {given!r}. {GIVE_A_FILE}.", returncode=2) from None
        except IsADirectoryError:
            raise CommandError(f"{given!r} is a folder. {GIVE_A_FILE}.", returncode=2) from None
        except PermissionError:
            raise CommandError(
                f"{given!r} cannot be read: permission denied. Make it readable by this user (or copy it "
                "somewhere that is) and run the command again.",
                returncode=2,
            ) from None
        except OSError as error:
            raise CommandError(
                f"{given!r} cannot be read ({error.strerror}). {GIVE_A_FILE}.", returncode=2
            ) from None

    def _report_parsed(self, source: str, parsed: Parsed) -> None:
        duplicates = sum(1 for item in parsed.items if item.duplicate_of is not None)
        read = f"Read {source} ({parsed.format}): {_count(len(parsed.items), 'prompt')}"
        if duplicates:
            read += f", {duplicates:,} the same as an earlier row (sharing its result, not run again)"
        self.report.write(f"{read}.")
        if parsed.skipped or parsed.empty_rows:
            self.report.write(f"Skipped {_count(len(parsed.skipped) + parsed.empty_rows, 'row')}:")
            for skipped in parsed.skipped:
                self.report.write(f"  row {skipped.row:,}: {skipped.reason}")
            if parsed.empty_rows:
                self.report.write(f"  {_count(parsed.empty_rows, 'empty row')}")
        for note in parsed.notes:
            self.report.write(f"Note: {note}")

    def _budget_warning(self, batch: Batch, run_settings: dict, owner) -> str:
        if _builtin_only(run_settings):
            return ""
        texts = list(batch.items.filter(duplicate_of=None).values_list("text", flat=True))
        return estimate(texts=texts, model=run_settings["model"], user_id=owner.pk).warning

    # --- --wait ---------------------------------------------------------------------------------

    def _wait(self, batch: Batch, to_run: int) -> selectors.Progress:
        """Run the batch's queued runs here, as a worker does (``pipeline.run_next``: conditional
        claims, so workers elsewhere share the work), until nothing is left to run; a cancelled batch
        ends when its running items have."""
        bar = tqdm(total=to_run, desc=f"Batch {batch.pk}", unit="item", file=_Unended(self.stderr))
        _bar_show(bar, selectors.progress(batch))
        watcher = _BarWatcher(batch, bar)
        watcher.start()
        try:
            while True:
                status = Batch.objects.filter(pk=batch.pk).values_list("status", flat=True).first()
                if status is None:
                    raise CommandError(
                        f"Batch {batch.pk} was deleted while it ran.", returncode=EXIT_ITEMS_FAILED
                    )
                current = selectors.progress(batch)
                if not current.remaining or (
                    status == Batch.Status.CANCELLED and not current.queued + current.running
                ):
                    return current
                engines = set(
                    OptimizationRun.objects.filter(batch=batch, status=RunStatus.QUEUED)
                    .values_list("engine", flat=True)
                    .distinct()
                )
                if not sum(pipeline.run_next(engine=engine) for engine in sorted(engines)):
                    _unstick(batch)
                    time.sleep(POLL_S)
        finally:
            watcher.stop()
            _bar_show(bar, selectors.progress(batch))
            bar.close()

    def _report_finished(self, batch: Batch, finished: selectors.Progress) -> None:
        batch.refresh_from_db()
        took = ((batch.finished_at or timezone.now()) - batch.started_at).total_seconds()
        details = [
            f"{finished.degraded:,} on the built-in engine after a model failed" if finished.degraded else "",
            f"{finished.cached:,} from the result cache" if finished.cached else "",
        ]
        shown = ", ".join(detail for detail in details if detail)
        self.report.write(
            f"Batch {batch.pk} {batch.get_status_display().lower()}: {finished.done:,} done"
            + (f" ({shown})" if shown else "")
            + f", {finished.failed:,} failed, {_count(finished.duplicates, 'duplicate')}; "
            f"cost ${finished.cost:.6f} in {selectors.eta_text(took) or '0:00:00'}."
        )

    def _print_json(self, batch: Batch, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(batch_json(batch), ensure_ascii=False, indent=2))


def batch_json(batch: Batch) -> dict:
    """The batch and each item's result. An item's ``run`` is the run whose result it shows (for a
    duplicate, its first item's); its ``cost`` is what the item itself spent (a duplicate: nothing)."""
    current = selectors.progress(batch)
    rows = []
    for item in selectors.items(batch):
        state = selectors.item_state(item)
        run = selectors.result_run(item)
        own = item.run if item.duplicate_of_id is None else None
        rows.append(
            {
                "row": item.row,
                "title": item.title,
                "type": item.type,
                "status": state,
                "run": run.pk if run else None,
                "optimized": run.optimized_text if run and run.status == RunStatus.DONE else "",
                "score_before": run.score_before if run else None,
                "score_after": run.score_after if run else None,
                "scores": run.scores if run else {},
                "cost": format(own.cost if own else Decimal(0), "f"),
                "error": run.error if run and run.status == RunStatus.FAILED else "",
                "duplicate_of": item.duplicate_of.row if item.duplicate_of_id is not None else None,
            }
        )
    return {
        "batch": {
            "id": batch.pk,
            "name": batch.name,
            "status": batch.status,
            "page": _page(batch),
            "source": batch.source,
            "format": batch.format,
            "settings": batch.settings,
            "size": batch.size,
            "skipped": batch.skipped,
            "empty_rows": batch.empty_rows,
            "counts": {name: getattr(current, name) for name in COUNTS},
            "cost": format(current.cost.quantize(COST_PLACES), "f"),
            "created_at": batch.created_at.isoformat(),
            "started_at": batch.started_at.isoformat() if batch.started_at else None,
            "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        },
        "items": rows,
    }


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _page(batch: Batch) -> str:
    return f"/batch/{batch.pk}/"


def _builtin_only(run_settings: dict) -> bool:
    return pipeline.engine_version(run_settings) == BuiltinEngine.version


def _unstick(batch: Batch) -> None:
    """Nothing could be claimed: its running items are another worker's, or a dead one's. What the
    minute sweep does for this batch, done now, so --wait needs no worker: a run whose worker died is
    queued again (or, after RUN_MAX_ATTEMPTS, failed), and items a dead worker did not start are."""
    running = OptimizationRun.objects.filter(batch=batch, status=RunStatus.RUNNING).only(
        "pk", "status", "attempts", "heartbeat_at", "started_at", "worker", "engine"
    )
    for run in running:
        runqueue.requeue_if_dead(run)
    dispatch(batch.pk)


def _bar_show(bar: tqdm, current: selectors.Progress) -> None:
    bar.n = min(current.done + current.failed + current.deleted, bar.total)
    bar.set_postfix_str(
        f"done {current.done:,}, failed {current.failed:,}, ${current.cost:.6f}", refresh=False
    )
    bar.refresh()


class _Unended:
    """The command's stderr without the line ending its OutputWrapper adds to each write: tqdm
    redraws its line with a carriage return."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


class _BarWatcher(threading.Thread):
    """Redraws the bar from the database every POLL_S, in a thread of its own (with its own database
    connection), so it moves item by item while the command is inside ``run_next`` (a built-in token
    goes on for up to ten seconds)."""

    def __init__(self, batch: Batch, bar: tqdm):
        super().__init__(name=f"batch-{batch.pk}-bar", daemon=True)
        self.batch, self.bar = batch, bar
        self._finished = threading.Event()

    def run(self) -> None:
        try:
            while not self._finished.wait(POLL_S):
                try:
                    _bar_show(self.bar, selectors.progress(self.batch))
                except DatabaseError as error:  # a missed redraw; the next one reads again
                    logger.warning("batch %s: progress not read (%s)", self.batch.pk, type(error).__name__)
        finally:
            connection.close()

    def stop(self) -> None:
        self._finished.set()
        self.join()
