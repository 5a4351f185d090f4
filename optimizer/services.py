"""State changes of the optimizer app. Views, commands and tasks call these; nothing else writes."""

import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from optimizer import caching, pipeline, runqueue
from optimizer.builtin_engine.rubric import score
from optimizer.engines import BuiltinEngine
from optimizer.models import OptimizationRun, Prompt

logger = logging.getLogger(__name__)

ADMIN_PASSWORD_FILENAME = "admin-password.txt"  # noqa: S105 - a file name, not a secret


def admin_password_file() -> Path:
    return settings.DATA_DIR / ADMIN_PASSWORD_FILENAME


@dataclass(frozen=True)
class FirstSuperuser:
    username: str
    created: bool
    generated_password: str | None = None  # set only when generated now: shown once, never logged


def first_superuser_ensure(*, username: str, email: str = "", password: str | None = None) -> FirstSuperuser:
    """Create a superuser when none exists; a no-op otherwise.

    Without ``password`` one is generated, returned once and saved owner-only in the data directory.
    Raises ``ValidationError`` for a username or password Django would reject.
    """
    user_model = get_user_model()
    existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        return FirstSuperuser(username=existing.get_username(), created=False)

    user_model.username_validator(username)
    generated = password is None
    if generated:
        password = secrets.token_urlsafe(12)
    else:
        validate_password(password, user_model(username=username, email=email))
    try:
        with transaction.atomic():
            user_model.objects.create_superuser(username=username, email=email, password=password)
    except IntegrityError:
        raise ValidationError(
            f"A user named {username!r} already exists but is not a superuser. "
            "Choose another name with ADMIN_USERNAME."
        ) from None
    if not generated:
        return FirstSuperuser(username=username, created=True)
    _write_owner_only(admin_password_file(), f"{username}\n{password}\n")
    return FirstSuperuser(username=username, created=True, generated_password=password)


def _write_owner_only(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only; an earlier file (the first admin of another
    database using this data directory) is kept beside it, never overwritten."""
    if path.exists():
        stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
        path.rename(path.with_name(f"{path.name}.{stamp}"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# --- Optimization runs ----------------------------------------------------------------------


def run_settings_build(
    *,
    prompt_type: str,
    preset: str,
    techniques: list[str],
    model: str,
    keep_spans: bool,
    answers: dict[str, str] | None = None,
) -> dict:
    """The settings a run records, in the one shape the result cache keys on; ``answers`` (the
    author's answers to clarifying questions, by key) only when there are some."""
    built = {
        "type": prompt_type,
        "preset": preset,
        "techniques": sorted(set(techniques)),
        "model": model,
        "keep_spans": keep_spans,
    }
    return built | ({"answers": answers} if answers else {})


FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\n(?P<body>.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(?P<title>.+?)[ \t]*$", re.MULTILINE | re.IGNORECASE)
# What a line's markup is, not its words: heading marks, list bullets, quote marks, emphasis.
LINE_MARKUP = re.compile(r"^(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)+")
INLINE_MARKUP = re.compile(r"\*\*|__|`+|~~")
ONLY_TAGS = re.compile(r"^(?:\s*(?:</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>|<!--.*?-->))+\s*$")
RULE = re.compile(r"^[-*_=~#\s]{3,}$")
FENCE = re.compile(r"^(?:```|~~~)")


def _title_from(text: str) -> str:
    """A prompt's first line of words: past YAML front matter (its ``title:`` if it has one), rules,
    code blocks, lines of tags alone and heading marks, so a prompt that starts "---" is not
    titled "---"."""
    title = ""
    if front := FRONT_MATTER.match(text):
        named = FRONT_MATTER_TITLE.search(front["body"])
        title = _words(named["title"].strip("\"'")) if named else ""
        text = text[front.end() :]
    in_code, code = False, ""
    for line in text.splitlines():
        if title:
            break
        if FENCE.match(line.strip()):
            in_code = not in_code
        elif not in_code:
            title = _words(line)
        else:
            code = code or line.strip()  # a prompt that is all code is titled by its first line
    title = title or code or "Untitled prompt"
    # "Summarize this review:" reads as a title without its colon (ASCII or full-width).
    title = title.rstrip(":\uff1a").rstrip() or title
    return title if len(title) <= 80 else title[:79].rstrip() + "…"


def _words(line: str) -> str:
    """The line without its markup; empty when it held nothing else (a rule, a lone tag)."""
    line = line.strip()
    if not line or RULE.match(line) or ONLY_TAGS.match(line):
        return ""
    line = INLINE_MARKUP.sub("", LINE_MARKUP.sub("", line)).strip()
    return line if any(char.isalnum() for char in line) else ""


@transaction.atomic(savepoint=False)  # inside the run limit's transaction: no savepoint round trips
def run_submit(
    *,
    owner,
    text: str,
    run_settings: dict,
    title: str = "",
    tags: list[str] | None = None,
    parent: OptimizationRun | None = None,
    batch=None,
    enqueue: bool = True,
) -> OptimizationRun:
    """Save the prompt and a run of it. A result-cache hit completes the run at once (no task, no
    cost); otherwise the run is queued and a worker picks it up once this transaction commits
    (``enqueue=False``: the caller runs the pipeline itself)."""
    prompt = Prompt(
        owner=owner,
        title=title.strip() or _title_from(text),
        text=text,
        type=run_settings["type"],
        tags=tags or [],
    )
    run = OptimizationRun(owner=owner, prompt=prompt, parent=parent, batch=batch, settings=run_settings)
    version = pipeline.engine_version(run_settings)
    hit = caching.cached(caching.result_key(text, run_settings, version, owner_id=owner.pk))
    if hit:
        now = timezone.now()
        for name, value in hit.items():
            setattr(run, name, value)
        run.status, run.cached, run.started_at, run.finished_at, run.duration_ms = (
            OptimizationRun.Status.DONE, True, now, now, 0
        )  # fmt: skip
        _prompt_and_run_insert(prompt, run)
        return run
    run.engine = (
        OptimizationRun.Engine.BUILTIN if version == BuiltinEngine.version else OptimizationRun.Engine.LLM
    )
    _prompt_and_run_insert(prompt, run)
    if enqueue:
        transaction.on_commit(partial(runqueue.enqueue, run.engine))
    return run


def _prompt_and_run_insert(prompt: Prompt, run: OptimizationRun) -> None:
    """INSERT a new prompt and its run: on PostgreSQL in one statement (one round trip), on SQLite
    one after the other. The statements are built once from the models' metadata instead of compiled
    by the ORM on every call (most of a cache hit's time in the database layer); the values still go
    through the models' own fields, so defaults, ``auto_now_add`` and conversions apply as usual."""
    alias = router.db_for_write(OptimizationRun)
    connection = connections[alias]
    sql = _insert_statements(connection)
    prompt_values = _field_values(sql.prompt_fields, prompt, connection)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql.prompt_and_run, prompt_values + _field_values(sql.run_fields, run, connection))
            prompt.pk, run.pk = cursor.fetchone()
        else:
            cursor.execute(sql.prompt, prompt_values)
            prompt.pk = cursor.lastrowid
            cursor.execute(sql.run, [prompt.pk, *_field_values(sql.run_fields, run, connection)])
            run.pk = cursor.lastrowid
    run.prompt = prompt
    for saved in (prompt, run):
        saved._state.adding, saved._state.db = False, alias


def _field_values(fields: list, instance, connection) -> list:
    return [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]


@dataclass(frozen=True)
class _InsertStatements:
    prompt_fields: list
    run_fields: list  # all but the prompt, which comes first in both statements that insert a run
    prompt: str
    run: str
    prompt_and_run: str  # PostgreSQL: the run takes the id the prompt's INSERT returns


_INSERT_STATEMENTS: dict[str, _InsertStatements] = {}


def _insert_statements(connection) -> _InsertStatements:
    """Built once per database vendor from the models' metadata: no user input reaches the SQL."""
    if connection.vendor not in _INSERT_STATEMENTS:
        quote = connection.ops.quote_name
        prompt_fields = [field for field in Prompt._meta.concrete_fields if not field.primary_key]
        run_fields = [
            field
            for field in OptimizationRun._meta.concrete_fields
            if not field.primary_key and field.name != "prompt"
        ]

        prompt_column = quote(OptimizationRun._meta.get_field("prompt").column)

        def insert(model, fields, prompt_value: str | None = None) -> str:
            columns = [quote(field.column) for field in fields]
            values = ["%s"] * len(fields)
            if prompt_value:  # a run's: its prompt first
                columns.insert(0, prompt_column)
                values.insert(0, prompt_value)
            table = quote(model._meta.db_table)
            return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)})"  # noqa: S608

        new_prompt = f"{insert(Prompt, prompt_fields)} RETURNING {quote('id')}"
        new_run = insert(OptimizationRun, run_fields, f"(SELECT {quote('id')} FROM new_prompt)")  # noqa: S608
        returning = f"RETURNING {prompt_column}, {quote('id')}"
        _INSERT_STATEMENTS[connection.vendor] = _InsertStatements(
            prompt_fields=prompt_fields,
            run_fields=run_fields,
            prompt=insert(Prompt, prompt_fields),
            run=insert(OptimizationRun, run_fields, "%s"),
            prompt_and_run=f"WITH new_prompt AS ({new_prompt}) {new_run} {returning}",
        )
    return _INSERT_STATEMENTS[connection.vendor]


def run_reoptimize(*, run: OptimizationRun) -> OptimizationRun:
    """Optimize a run's result again, with the same settings: a new version linked to its parent. The
    author's answers are not given again: the result already has them woven in."""
    if run.status != OptimizationRun.Status.DONE:
        raise ValidationError("Only a finished optimization can be optimized again.")
    if run.engine == OptimizationRun.Engine.BUILTIN and run.optimized_text.strip() != run.prompt.text.strip():
        raise ValidationError(
            "The built-in engine's second pass over its own result changes nothing. Answer the questions, "
            "or choose a language model, to make a new version."
        )
    if run.optimized_text.strip() == run.prompt.text.strip():
        raise ValidationError(
            "This optimization returned your prompt unchanged, so optimizing it again would give the same "
            "result. Answer its questions, or edit the prompt, to make a new version."
        )
    title = _title_from(run.prompt.title)
    return run_submit(
        owner=run.owner,
        text=run.optimized_text,
        run_settings={name: value for name, value in run.settings.items() if name != "answers"},
        title=title if title.endswith("(again)") else f"{title[:110]} (again)",
        tags=run.prompt.tags,
        parent=run,
    )


def run_answer(*, run: OptimizationRun, answers: dict[str, str]) -> OptimizationRun:
    """Optimize the run's original prompt again with the author's answers to its open questions: a new
    version linked to its parent, whose settings carry the parent's earlier answers and these ones.
    Blank answers are left out; a key that is not one of the run's open questions is refused."""
    if run.status != OptimizationRun.Status.DONE:
        raise ValidationError("Only a finished optimization's questions can be answered.")
    open_keys = {question["key"] for question in run.questions}
    unknown = sorted(set(answers) - open_keys)
    if unknown:
        raise ValidationError(f"“{unknown[0]}” is not one of this optimization's open questions.")
    given = {key: text.strip() for key, text in answers.items() if text.strip()}
    if not given:
        raise ValidationError("Answer at least one question.")
    title = _title_from(run.prompt.title)
    return run_submit(
        owner=run.owner,
        text=run.prompt.text,
        run_settings=run.settings | {"answers": (run.settings.get("answers") or {}) | given},
        title=title if title.endswith("(answered)") else f"{title[:107]} (answered)",
        tags=run.prompt.tags,
        parent=run,
    )


def run_keep_original_set(*, run: OptimizationRun, kept: bool) -> OptimizationRun:
    """Record the author's choice between their original prompt and the rewrite (either way, again)."""
    if run.status != OptimizationRun.Status.DONE:
        raise ValidationError("This optimization has no rewrite yet to choose against.")
    OptimizationRun.objects.filter(pk=run.pk).update(kept_original=kept)
    run.kept_original = kept
    return run


@transaction.atomic
def run_delete(*, run: OptimizationRun) -> None:
    """Delete a run; its prompt goes too when no other run uses it. Usage records stay (costs). A
    batch's run leaves its item deleted, and the batch starts its next item in its place (or ends)."""
    prompt = run.prompt
    run.delete()
    if not prompt.runs.exists():
        prompt.delete()
    if run.batch_id is not None:
        from optimizer.batches.services import dispatch  # it imports this module

        transaction.on_commit(partial(dispatch, run.batch_id))


def prompt_favorite_set(*, prompt: Prompt, favorite: bool) -> Prompt:
    Prompt.objects.filter(pk=prompt.pk).update(favorite=favorite)
    prompt.favorite = favorite
    return prompt


def run_expire_stale(*, run: OptimizationRun) -> OptimizationRun:
    """A run whose worker died is queued again at once when someone looks at it (the sweep does the
    same every minute for runs nobody looks at)."""
    if runqueue.requeue_if_dead(run):
        run.refresh_from_db()
    return run


EDITED_CHANGE = {
    "what": "Edited by hand",
    "why": "You changed the text yourself: the diff shows every change from the prompt it started from.",
}


@transaction.atomic
def run_edit_save(*, run: OptimizationRun, text: str) -> OptimizationRun:
    """Save the author's own edit of a run's text as a new version of it: a child run, done at once and
    scored by the checklist like any other (no model call, no cost). It starts from the same prompt as
    ``run`` (so its diagnosis still holds, and the diff and the scores show the whole way from there);
    its settings say it was edited (``"edited": true``)."""
    if run.status != OptimizationRun.Status.DONE:
        raise ValidationError("Only a finished optimization's text can be edited: wait for it to finish.")
    shown = run.prompt.text if run.kept_original else run.optimized_text
    if text.strip() == shown.strip():
        raise ValidationError("The text is as it was. Change it, then save it as a new version.")
    if text.strip() == run.prompt.text.strip():
        raise ValidationError(
            "This is the prompt this version started from: use “Keep my original” to keep it instead."
        )
    before, after = score(run.prompt.text), score(text)
    title = _title_from(run.prompt.title)
    prompt = Prompt.objects.create(
        owner=run.owner,
        title=title if title.endswith("(edited)") else f"{title[:110]} (edited)",
        text=run.prompt.text,
        type=run.prompt.type,
        tags=run.prompt.tags,
    )
    now = timezone.now()
    return OptimizationRun.objects.create(
        owner=run.owner,
        prompt=prompt,
        parent=run,
        settings=run.settings | {"edited": True},
        engine=OptimizationRun.Engine.BUILTIN,
        status=OptimizationRun.Status.DONE,
        deconstruction=run.deconstruction,
        diagnosis=run.diagnosis,
        optimized_text=text,
        changes=[EDITED_CHANGE],
        scores={"before": before, "after": after},
        score_before=before["overall"],
        score_after=after["overall"],
        score_gain=after["overall"] - before["overall"],
        started_at=now,
        finished_at=now,
        duration_ms=0,
    )
