"""What the Analytics page shows: how much the runs of a scope and date range improved their prompts,
by prompt type, engine, model and technique, the model's verdicts, and the questions left open.

The figures come from six aggregate queries over the range's runs, grouped in the database by local
day and what each figure groups by (what they return to Python is bounded by days, types, engines,
models, techniques and question keys, not by runs); the per-technique and per-question figures unnest
the runs' JSON lists in SQL (SQLite's ``json_each``, PostgreSQL's ``jsonb_array_elements``).

Reading the JSON of 10,000 runs takes about 0.3 s, so each day's grouped rows are kept in the cache
under a fingerprint of that day's runs (how many, the newest, how many finished and failed, and how
many versions answered their questions, the newest of them): a run added, finished, failed, answered
or deleted changes its day's fingerprint, and only the days whose fingerprint changed (today, mostly)
are read again. A view then reads one grouped query of fingerprints and the kept days.
"""

import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.db.models import Count, F, Max, Q, QuerySet, Sum, Window
from django.db.models.fields.json import KT, KeyTransform
from django.db.models.functions import RowNumber

from costs.budgets import local_date, range_bounds
from costs.selectors import Scope
from optimizer.builtin_engine.catalogue import TECHNIQUES
from optimizer.models import OptimizationRun, Prompt

DONE = OptimizationRun.Status.DONE
FAILED = OptimizationRun.Status.FAILED
ENGINE_LABELS = {"builtin": "Built-in engine", "llm": "Language model", "edited": "Edited by hand"}
# run.html's words for the model's pairwise verdict on the rewrite (``scores.verdict.winner``).
VERDICTS = (("rewrite", "Better"), ("tie", "Tie"), ("original", "Worse"))
TOP_PROMPTS = 10
TOP_QUESTIONS = 10
KEEP_S = 3600  # a change no fingerprint sees (an admin's edit of a title) shows within the hour
KINDS = ("status", "scores", "verdicts", "techniques", "questions", "improved")


@dataclass(frozen=True)
class Series:
    """One column of a figure: a dataset of its chart."""

    name: str
    values: list
    hidden: bool = False  # starts hidden in the chart (shown from the legend)


@dataclass(frozen=True)
class Figure:
    """One chart's numbers, row by row: what the chart draws and the table beside it lists."""

    heading: str  # of the labels' column
    labels: list[str]
    series: list[Series] = field(default_factory=list)

    @property
    def rows(self) -> list[tuple[str, list]]:
        columns = [item.values for item in self.series]
        return [(label, [values[index] for values in columns]) for index, label in enumerate(self.labels)]


def runs_in_range(*, scope: Scope, start: date, end: date) -> QuerySet[OptimizationRun]:
    """The scope's runs created from local day ``start`` to ``end`` (of any status: named, so the
    database can read the site's through its status and creation time index)."""
    since, until = range_bounds(start, end)
    runs = scope.runs().filter(created_at__gte=since, created_at__lt=until).order_by()
    return runs.filter(status__in=OptimizationRun.Status.values) if scope.site else runs


def _local_day(runs: QuerySet, start: date, end: date, field: str = "created_at"):
    since, until = range_bounds(start, end)
    return local_date(field, since, until, vendor=connections[runs.db].vendor)


def _as_date(value) -> date:
    """A day as a raw query returns it: a date on PostgreSQL, ISO text on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _scored(runs: QuerySet) -> QuerySet:
    return runs.filter(status=DONE, score_gain__isnull=False)


def _engine(engine: str, edited) -> str:
    """A version edited by hand says "builtin" (the built-in checklist scored it): it is no engine's."""
    return ENGINE_LABELS["edited"] if edited else ENGINE_LABELS.get(engine, engine)


def _model(engine: str, provider: str, model: str) -> str:
    if not model:
        return ENGINE_LABELS["builtin"] if engine == "builtin" else "Unknown model"
    return f"{provider} / {model}" if provider else model


def _type(value: str) -> str:
    return Prompt.Type(value).label if value in Prompt.Type.values else value or "Unknown"


def _mean(total, count: int) -> float | None:
    return round(total / count, 1) if count else None


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


# --- What each day's runs add up to -------------------------------------------------------------


def _status_rows(runs: QuerySet, day) -> list[dict]:
    """Runs per day, engine, status, hand edit and prompt type: the runs per day, the prompt types
    and the totals."""
    return list(
        runs.annotate(day=day, edited=KeyTransform("edited", "settings"))
        .values("day", "engine", "status", "edited", "prompt__type")
        .annotate(count=Count("id"))
    )


def _score_rows(runs: QuerySet, day) -> list[dict]:
    """Sums of the finished runs' scores per day, prompt type, engine and model: all three figures."""
    return list(
        _scored(runs)
        .annotate(day=day, edited=KeyTransform("edited", "settings"))
        .values("day", "prompt__type", "engine", "provider", "model", "edited")
        .annotate(
            count=Count("id"),
            before=Sum("score_before", default=0),
            after=Sum("score_after", default=0),
            gain=Sum("score_gain", default=0),
        )
    )


def _verdict_rows(runs: QuerySet, day) -> list[dict]:
    """Verdicts per day, prompt type, model and winner, of the finished runs of the language-model
    engine (the only one that asks a model to judge): both verdict figures."""
    return list(
        runs.filter(status=DONE, engine=OptimizationRun.Engine.LLM)
        .filter(scores__verdict__winner__in=[winner for winner, _ in VERDICTS])
        .annotate(day=day, winner=KT("scores__verdict__winner"))
        .values("day", "prompt__type", "engine", "provider", "model", "winner")
        .annotate(count=Count("id"))
    )


# Per day and technique of the runs' chosen ones (``run.techniques``: [{slug, applied, ...}]): how often
# it was chosen and applied, and over the runs that applied it the gain summed and the verdicts.
TECHNIQUES_SQL = {
    # The verdict is read once per run (the scores are the largest JSON of a run), not per technique.
    "sqlite": """
        WITH r AS MATERIALIZED (
            SELECT day, techniques, score_gain, json_extract(scores, '$.verdict.winner') AS winner
            FROM ({selected}) AS s WHERE json_type(techniques) = 'array'
        ), t AS (
            SELECT r.day, json_extract(t.value, '$.slug') AS slug,
                   json_extract(t.value, '$.applied') = 1 AS applied, r.score_gain, r.winner
            FROM r, json_each(r.techniques) AS t WHERE t.type = 'object'
        )
        SELECT day, slug, COUNT(*), SUM(applied),
               SUM(CASE WHEN applied AND score_gain IS NOT NULL THEN 1 ELSE 0 END),
               SUM(CASE WHEN applied THEN score_gain ELSE 0 END),
               SUM(CASE WHEN applied AND winner IN ('rewrite', 'tie', 'original') THEN 1 ELSE 0 END),
               SUM(CASE WHEN applied AND winner = 'rewrite' THEN 1 ELSE 0 END)
        FROM t GROUP BY day, slug
    """,
    "postgresql": """
        SELECT r.day, t.value ->> 'slug' AS slug,
               COUNT(*),
               COUNT(*) FILTER (WHERE t.value -> 'applied' = 'true'::jsonb),
               COUNT(r.score_gain) FILTER (WHERE t.value -> 'applied' = 'true'::jsonb),
               COALESCE(SUM(r.score_gain) FILTER (WHERE t.value -> 'applied' = 'true'::jsonb), 0),
               COUNT(*) FILTER (WHERE t.value -> 'applied' = 'true'::jsonb
                                 AND r.scores -> 'verdict' ->> 'winner' IN ('rewrite', 'tie', 'original')),
               COUNT(*) FILTER (WHERE t.value -> 'applied' = 'true'::jsonb
                                 AND r.scores -> 'verdict' ->> 'winner' = 'rewrite')
        FROM ({selected}) AS r
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(r.techniques) = 'array' THEN r.techniques ELSE '[]'::jsonb END
        ) AS t(value)
        WHERE jsonb_typeof(t.value) = 'object'
        GROUP BY r.day, slug
    """,
}


UNNESTED_COLUMNS = ("id", "day", "techniques", "questions", "scores", "score_gain")
TECHNIQUE_COLUMNS = ("day", "slug", "chosen", "applied", "scored", "gain", "judged", "better")


def _unnested(sql: dict[str, str], runs: QuerySet, day) -> list[tuple]:
    """The rows of one of the vendor-specific queries here, over the finished runs of ``runs`` (their
    SQL as a derived table: an ``id IN (...)`` would look every run up again by its id)."""
    connection = connections[runs.db]
    selected = runs.filter(status=DONE).annotate(day=day).values(*UNNESTED_COLUMNS)
    sql_text, params = selected.query.sql_with_params()
    table = connection.ops.quote_name(OptimizationRun._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql[connection.vendor].format(runs=table, selected=sql_text), params)
        return cursor.fetchall()


def _technique_rows(runs: QuerySet, day) -> list[dict]:
    return [
        dict(zip(TECHNIQUE_COLUMNS, (_as_date(row[0]), *row[1:]), strict=True))
        for row in _unnested(TECHNIQUES_SQL, runs, day)
    ]


# A question of a finished run is left unanswered when no version made from that run (a child) carries
# an answer under its key (``run_answer`` stores them in the child's ``settings["answers"]``).
QUESTIONS_SQL = {
    "sqlite": """
        SELECT r.day, json_extract(q.value, '$.key') AS question_key, COUNT(*) AS times,
               MAX(json_extract(q.value, '$.question'))
        FROM ({selected}) AS r, json_each(r.questions) AS q
        WHERE json_type(r.questions) = 'array' AND q.type = 'object'
          AND NOT EXISTS (
              SELECT 1 FROM {runs} AS c, json_each(c.settings, '$.answers') AS a
              WHERE c.parent_id = r.id AND a.key = json_extract(q.value, '$.key')
          )
        GROUP BY r.day, question_key
    """,
    "postgresql": """
        SELECT r.day, q.value ->> 'key' AS question_key, COUNT(*) AS times, MAX(q.value ->> 'question')
        FROM ({selected}) AS r
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(r.questions) = 'array' THEN r.questions ELSE '[]'::jsonb END
        ) AS q(value)
        WHERE jsonb_typeof(q.value) = 'object'
          AND NOT EXISTS (
              SELECT 1 FROM {runs} AS c
              WHERE c.parent_id = r.id AND jsonb_typeof(c.settings -> 'answers') = 'object'
                AND jsonb_exists(c.settings -> 'answers', q.value ->> 'key')
          )
        GROUP BY r.day, question_key
    """,
}


def _question_rows(runs: QuerySet, day) -> list[dict]:
    return [
        {"day": _as_date(found_day), "key": key or "", "times": times, "question": question or ""}
        for found_day, key, times, question in _unnested(QUESTIONS_SQL, runs, day)
    ]


IMPROVED_FIELDS = (
    "id", "owner_id", "owner__username", "prompt_id", "prompt__title", "prompt__type", "score_before",
    "score_after", "score_gain", "created_at",
)  # fmt: skip
IMPROVED_PER_DAY = TOP_PROMPTS * 4  # a prompt's later versions may follow its best run


def _improved_rows(runs: QuerySet, day) -> list[dict]:
    """Each day's finished runs of the largest checklist gain."""
    order = [F("score_gain").desc(), F("created_at").desc(), F("id").desc()]
    rank = Window(RowNumber(), partition_by=[day], order_by=order)
    return list(
        _scored(runs)
        .filter(score_gain__gt=0)
        .annotate(day=day, rank=rank)
        .filter(rank__lte=IMPROVED_PER_DAY)
        .values("day", *IMPROVED_FIELDS)
    )


ROW_QUERIES = {
    "status": _status_rows,
    "scores": _score_rows,
    "verdicts": _verdict_rows,
    "techniques": _technique_rows,
    "questions": _question_rows,
    "improved": _improved_rows,
}


# --- Figures from the rows -----------------------------------------------------------------------


def runs_per_day(*, rows: list[dict], start: date, end: date) -> Figure:
    """Finished runs of each local day by engine (versions edited by hand apart), and failed runs."""
    counts: dict[tuple[date, str], int] = {}
    for row in rows:
        if row["status"] not in (DONE, FAILED):
            continue
        column = "Failed" if row["status"] == FAILED else _engine(row["engine"], row["edited"])
        counts[row["day"], column] = counts.get((row["day"], column), 0) + row["count"]
    days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
    columns = [name for name in (*ENGINE_LABELS.values(), "Failed") if any(key[1] == name for key in counts)]
    return Figure(
        "Day",
        [day.isoformat() for day in days] if counts else [],
        [Series(name, [counts.get((day, name), 0) for day in days]) for name in columns],
    )


def type_distribution(*, rows: list[dict]) -> Figure:
    """Runs (all of them, and the finished ones) per prompt type, most runs first."""
    counts: dict[str, list[int]] = {}
    for row in rows:
        total = counts.setdefault(_type(row["prompt__type"]), [0, 0])
        total[0] += row["count"]
        total[1] += row["count"] if row["status"] == DONE else 0
    ordered = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))
    return Figure(
        "Prompt type",
        [label for label, _ in ordered],
        [
            Series("Runs", [total[0] for _, total in ordered]),
            Series("Finished", [total[1] for _, total in ordered]),
        ],
    )


SCORE_GROUPS = {"type": "Prompt type", "engine": "Engine", "model": "Model"}


def _group_label(group: str, row: dict) -> str:
    if group == "type":
        return _type(row["prompt__type"])
    if group == "engine":
        return _engine(row["engine"], row["edited"])
    return ENGINE_LABELS["edited"] if row["edited"] else _model(row["engine"], row["provider"], row["model"])


def scores_by(*, rows: list[dict], group: str) -> Figure:
    """Mean checklist score before and after, and the mean gain, of the finished runs per ``group``
    (prompt type, engine or model), most runs first."""
    sums: dict[str, list[int]] = {}
    for row in rows:
        total = sums.setdefault(_group_label(group, row), [0, 0, 0, 0])
        for index, name in enumerate(("count", "before", "after", "gain")):
            total[index] += row[name]
    ordered = sorted(sums.items(), key=lambda item: (-item[1][0], item[0]))
    return Figure(
        SCORE_GROUPS[group],
        [label for label, _ in ordered],
        [
            Series("Mean score before", [_mean(total[1], total[0]) for _, total in ordered]),
            Series("Mean score after", [_mean(total[2], total[0]) for _, total in ordered]),
            Series("Mean gain", [_mean(total[3], total[0]) for _, total in ordered]),
            Series("Runs", [total[0] for _, total in ordered], hidden=True),
        ],
    )


VERDICT_GROUPS = {"type": "Prompt type", "model": "Model"}


def verdicts_by(*, rows: list[dict], group: str) -> Figure:
    """How many finished runs the model judged better, tied or worse than their original, per prompt
    type or model; no rows when no run in the range has a verdict."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        if group == "type":
            label = _type(row["prompt__type"])
        else:
            label = _model(row["engine"], row["provider"], row["model"])
        per = counts.setdefault(label, {})
        per[row["winner"]] = per.get(row["winner"], 0) + row["count"]
    ordered = sorted(counts.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return Figure(
        VERDICT_GROUPS[group],
        [label for label, _ in ordered],
        [Series(word, [per.get(winner, 0) for _, per in ordered]) for winner, word in VERDICTS],
    )


def techniques_figures(*, rows: list[dict]) -> tuple[Figure, Figure]:
    """Two figures of the finished runs' techniques, most applied first: how often each was chosen and
    applied (a chosen one is not applied when the prompt already does what it adds); and, over the runs
    that applied it, their mean gain and the share of the model's verdicts that judged them better."""
    sums: dict[str, list[int]] = {}
    for row in rows:
        known = TECHNIQUES.get(row["slug"])
        total = sums.setdefault(known.name if known else str(row["slug"]), [0] * 6)
        for index, name in enumerate(TECHNIQUE_COLUMNS[2:]):
            total[index] += row[name] or 0
    ordered = sorted(sums.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    labels = [label for label, _ in ordered]
    totals = [total for _, total in ordered]  # chosen, applied, scored, gain, judged, better
    usage = Figure(
        "Technique",
        labels,
        [
            Series("Applied", [total[1] for total in totals]),
            Series("Chosen, not applied", [total[0] - total[1] for total in totals]),
        ],
    )
    effect = Figure(
        "Technique",
        labels,
        [
            Series("Mean gain of the runs that applied it", [_mean(total[3], total[2]) for total in totals]),
            Series("Judged better (% of verdicts)", [_share(total[5], total[4]) for total in totals]),
            Series("Verdicts", [total[4] for total in totals], hidden=True),
        ],
    )
    return usage, effect


@dataclass(frozen=True)
class OpenQuestion:
    key: str
    question: str  # one of the wordings it was asked in
    runs: int


def unanswered_questions(*, rows: list[dict], limit: int = TOP_QUESTIONS) -> list[OpenQuestion]:
    """The clarifying questions of the finished runs that no later version answered, by key, most
    often left open first."""
    sums: dict[str, list] = {}
    for row in rows:
        total = sums.setdefault(row["key"], [0, ""])
        total[0] += row["times"]
        total[1] = max(total[1], row["question"])
    ordered = sorted(sums.items(), key=lambda item: (-item[1][0], item[0]))
    return [OpenQuestion(key, question, times) for key, (times, question) in ordered[:limit]]


def most_improved(*, rows: list[dict], limit: int = TOP_PROMPTS) -> list[dict]:
    """The finished runs of the largest checklist gain, one per prompt (its best run), at most
    ``limit``, as plain rows."""
    kept, seen = [], set()
    for row in sorted(rows, key=lambda row: (-row["score_gain"], -row["created_at"].timestamp(), -row["id"])):
        if row["prompt_id"] not in seen:
            seen.add(row["prompt_id"])
            kept.append(row | {"type": _type(row["prompt__type"])})
    return kept[:limit]


# --- The page ------------------------------------------------------------------------------------


def _summary(rows: dict[str, list]) -> dict:
    """The range's totals: runs, finished, failed, scored and their mean gain, judged by a model."""
    status, scores = rows["status"], rows["scores"]
    scored = sum(row["count"] for row in scores)
    return {
        "runs": sum(row["count"] for row in status),
        "done": sum(row["count"] for row in status if row["status"] == DONE),
        "failed": sum(row["count"] for row in status if row["status"] == FAILED),
        "scored": scored,
        "mean_gain": _mean(sum(row["gain"] for row in scores), scored),
        "judged": sum(row["count"] for row in rows["verdicts"]),
    }


def _day_prints(scope: Scope, runs: QuerySet, start: date, end: date) -> dict[date, str]:
    """Each day's fingerprint, for the days with runs: what changes whenever the day's figures could.
    Its runs' count and newest (a run added or deleted), finished and failed counts (a finished run's
    scores, techniques and questions are written once, when it finishes), and the count and newest of
    the versions that answered its runs' questions (made on a later day, perhaps after the range)."""
    since, until = range_bounds(start, end)
    own = (
        runs.annotate(day=_local_day(runs, start, end))
        .values("day")
        .annotate(
            count=Count("id"),
            newest=Max("id"),
            done=Count("id", filter=Q(status=DONE)),
            failed=Count("id", filter=Q(status=FAILED)),
        )
        .order_by()
    )
    answers = (
        scope.runs()
        .filter(parent__created_at__gte=since, parent__created_at__lt=until)
        .annotate(day=_local_day(runs, start, end, "parent__created_at"))
        .values("day")
        .annotate(count=Count("id"), newest=Max("id"))
        .order_by()
    )
    prints = {row["day"]: f"{row['count']}.{row['newest']}.{row['done']}.{row['failed']}" for row in own}
    for row in answers:
        prints[row["day"]] = f"{prints.get(row['day'], '')}+{row['count']}.{row['newest']}"
    return prints


def _day_key(scope: Scope, day: date, fingerprint: str) -> str:
    whose = "site" if scope.site else f"user{scope.user_id}"
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:20]
    return f"analytics:v2:{settings.TIME_ZONE}:{whose}:{day}:{digest}"


def _rows(scope: Scope, start: date, end: date) -> dict[str, list]:
    """The grouped rows of every day of the range: kept ones read back, the others (days whose
    fingerprint changed) read from the runs of the span they cover, then kept."""
    runs = runs_in_range(scope=scope, start=start, end=end)
    keys = {
        day: _day_key(scope, day, fingerprint)
        for day, fingerprint in _day_prints(scope, runs, start, end).items()
    }
    kept: dict = {}
    with contextlib.suppress(Exception):  # a cache outage costs a recomputation, nothing more
        kept = cache.get_many(list(keys.values()))
    days = {day: kept[key] for day, key in keys.items() if isinstance(kept.get(key), dict)}
    missing = sorted(day for day in keys if day not in days)
    if missing:
        span = runs_in_range(scope=scope, start=missing[0], end=missing[-1])
        day = _local_day(span, missing[0], missing[-1])
        fresh = {found: {kind: [] for kind in KINDS} for found in missing}
        for kind, query in ROW_QUERIES.items():
            for row in query(span, day):
                if row["day"] in fresh:
                    fresh[row["day"]][kind].append(row)
        days |= fresh
        with contextlib.suppress(Exception):
            cache.set_many({keys[found]: fresh[found] for found in missing}, KEEP_S)
    return {kind: [row for found in days.values() for row in found[kind]] for kind in KINDS}


def analytics(*, scope: Scope, start: date, end: date) -> dict:
    """Every figure and list of the Analytics page for the scope's runs of the range."""
    rows = _rows(scope, start, end)
    usage, effect = techniques_figures(rows=rows["techniques"])
    return {
        "summary": _summary(rows),
        "figures": {
            "runs-per-day": runs_per_day(rows=rows["status"], start=start, end=end),
            "scores-by-type": scores_by(rows=rows["scores"], group="type"),
            "scores-by-engine": scores_by(rows=rows["scores"], group="engine"),
            "scores-by-model": scores_by(rows=rows["scores"], group="model"),
            "verdicts-by-type": verdicts_by(rows=rows["verdicts"], group="type"),
            "verdicts-by-model": verdicts_by(rows=rows["verdicts"], group="model"),
            "technique-usage": usage,
            "technique-effect": effect,
            "prompt-types": type_distribution(rows=rows["status"]),
        },
        "most_improved": most_improved(rows=rows["improved"]),
        "open_questions": unanswered_questions(rows=rows["questions"]),
    }


def figure(*, name: str, scope: Scope, start: date, end: date) -> Figure:
    """One figure of the page, by its name (what a chart's JSON view serves)."""
    return analytics(scope=scope, start=start, end=end)["figures"][name]
