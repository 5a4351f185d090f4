"""What the Analytics page shows: how much the runs of a scope and date range improved their prompts,
by prompt type, engine, model and technique, the model's verdicts, and the questions left open.

The figures come from five aggregate queries over the range's runs, grouped in the database (what
they return to Python is bounded by days, types, engines, models and techniques, not by runs); the
per-technique and per-question figures unnest the runs' JSON lists in SQL (SQLite's ``json_each``,
PostgreSQL's ``jsonb_array_elements``). Reading the runs' JSON costs about 0.2 s for 10,000 runs on
SQLite, so the page's figures are kept in the cache under a fingerprint of the scope's runs (how many,
the newest, how many finished and failed in the range): any run added, finished, failed, answered or
deleted changes it, and the next view computes them afresh.
"""

import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.fields.json import KT, KeyTransform

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
KEEP_S = 300  # a kept page outlives no change its fingerprint misses (an admin's edit) for long


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
    """The scope's runs created from local day ``start`` to ``end``."""
    since, until = range_bounds(start, end)
    return scope.runs().filter(created_at__gte=since, created_at__lt=until).order_by()


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


# --- Runs per day, prompt types ----------------------------------------------------------------


def _status_rows(runs: QuerySet, start: date, end: date) -> list[dict]:
    """Runs per local day, engine, status, hand edit and prompt type: one grouped query for the runs
    per day, the prompt types and the totals."""
    since, until = range_bounds(start, end)
    day = local_date("created_at", since, until, vendor=connections[runs.db].vendor)
    return list(
        runs.annotate(day=day, edited=KeyTransform("edited", "settings"))
        .values("day", "engine", "status", "edited", "prompt__type")
        .annotate(count=Count("id"))
    )


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


# --- Checklist scores ----------------------------------------------------------------------------

SCORE_GROUPS = {"type": "Prompt type", "engine": "Engine", "model": "Model"}


def _score_rows(runs: QuerySet) -> list[dict]:
    """Sums of the scores per prompt type, engine and model: one grouped query for all three figures."""
    return list(
        _scored(runs)
        .annotate(edited=KeyTransform("edited", "settings"))
        .values("prompt__type", "engine", "provider", "model", "edited")
        .annotate(
            count=Count("id"),
            before=Sum("score_before", default=0),
            after=Sum("score_after", default=0),
            gain=Sum("score_gain", default=0),
        )
    )


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


# --- The model's verdicts ------------------------------------------------------------------------

VERDICT_GROUPS = {"type": "Prompt type", "model": "Model"}


def _verdict_rows(runs: QuerySet) -> list[dict]:
    """Verdicts per prompt type, model and winner, of the finished runs of the language-model engine
    (the only one that asks a model to judge): one grouped query for both figures."""
    return list(
        runs.filter(status=DONE, engine=OptimizationRun.Engine.LLM)
        .filter(scores__verdict__winner__in=[winner for winner, _ in VERDICTS])
        .annotate(winner=KT("scores__verdict__winner"))
        .values("prompt__type", "engine", "provider", "model", "winner")
        .annotate(count=Count("id"))
    )


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


# --- Techniques ----------------------------------------------------------------------------------

# Per technique of the runs' chosen ones (``run.techniques``: [{slug, applied, ...}]): how often it
# was chosen and applied, and over the runs that applied it the gain summed and the verdicts.
TECHNIQUES_SQL = {
    # The verdict is read once per run (the scores are the largest JSON of a run), not per technique.
    "sqlite": """
        WITH r AS MATERIALIZED (
            SELECT techniques, score_gain, json_extract(scores, '$.verdict.winner') AS winner
            FROM ({selected}) AS s WHERE json_type(techniques) = 'array'
        ), t AS (
            SELECT json_extract(t.value, '$.slug') AS slug, json_extract(t.value, '$.applied') = 1 AS applied,
                   r.score_gain, r.winner
            FROM r, json_each(r.techniques) AS t WHERE t.type = 'object'
        )
        SELECT slug, COUNT(*), SUM(applied),
               SUM(CASE WHEN applied AND score_gain IS NOT NULL THEN 1 ELSE 0 END),
               SUM(CASE WHEN applied THEN score_gain ELSE 0 END),
               SUM(CASE WHEN applied AND winner IN ('rewrite', 'tie', 'original') THEN 1 ELSE 0 END),
               SUM(CASE WHEN applied AND winner = 'rewrite' THEN 1 ELSE 0 END)
        FROM t GROUP BY slug
    """,
    "postgresql": """
        SELECT t.value ->> 'slug' AS slug,
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
        GROUP BY slug
    """,
}


UNNESTED_COLUMNS = ("id", "techniques", "questions", "scores", "score_gain")


def _unnested(sql: dict[str, str], runs: QuerySet) -> list[tuple]:
    """The rows of one of the vendor-specific queries above, over the runs of ``runs`` (their SQL as
    a derived table: an ``id IN (...)`` would look every run up again by its id)."""
    connection = connections[runs.db]
    selected, params = runs.values(*UNNESTED_COLUMNS).query.sql_with_params()
    table = connection.ops.quote_name(OptimizationRun._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql[connection.vendor].format(runs=table, selected=selected), params)
        return cursor.fetchall()


def techniques_figures(*, runs: QuerySet) -> tuple[Figure, Figure]:
    """Two figures of the finished runs' techniques, most applied first: how often each was chosen and
    applied (a chosen one is not applied when the prompt already does what it adds); and, over the runs
    that applied it, their mean gain and the share of the model's verdicts that judged them better."""
    rows = []
    found = _unnested(TECHNIQUES_SQL, runs.filter(status=DONE))
    for slug, chosen, applied, scored, gain, judged, better in found:
        known = TECHNIQUES.get(slug)
        rows.append((known.name if known else str(slug), chosen, applied, scored, gain, judged, better))
    rows.sort(key=lambda row: (-row[2], -row[1], row[0]))
    labels = [row[0] for row in rows]
    usage = Figure(
        "Technique",
        labels,
        [
            Series("Applied", [row[2] for row in rows]),
            Series("Chosen, not applied", [row[1] - row[2] for row in rows]),
        ],
    )
    effect = Figure(
        "Technique",
        labels,
        [
            Series("Mean gain of the runs that applied it", [_mean(row[4], row[3]) for row in rows]),
            Series("Judged better (% of verdicts)", [_share(row[6], row[5]) for row in rows]),
            Series("Verdicts", [row[5] for row in rows], hidden=True),
        ],
    )
    return usage, effect


# --- Lists ---------------------------------------------------------------------------------------


IMPROVED_FIELDS = (
    "id", "owner_id", "owner__username", "prompt_id", "prompt__title", "prompt__type", "score_before",
    "score_after", "score_gain", "created_at",
)  # fmt: skip


def most_improved(*, runs: QuerySet, limit: int = TOP_PROMPTS) -> list[dict]:
    """The finished runs of the largest checklist gain, one per prompt (its best run), at most
    ``limit``, as plain rows (what the list shows, kept with the page's figures)."""
    best = (
        _scored(runs)
        .filter(score_gain__gt=0)
        .values(*IMPROVED_FIELDS)
        .order_by("-score_gain", "-created_at", "-id")
    )
    # A prompt's later versions may follow its best run: read a few more than shown.
    kept, seen = [], set()
    for row in best[: limit * 4]:
        if row["prompt_id"] not in seen:
            seen.add(row["prompt_id"])
            kept.append(row | {"type": _type(row["prompt__type"])})
    return kept[:limit]


# A question of a finished run is left unanswered when no version made from that run (a child) carries
# an answer under its key (``run_answer`` stores them in the child's ``settings["answers"]``).
QUESTIONS_SQL = {
    "sqlite": """
        SELECT json_extract(q.value, '$.key') AS question_key, COUNT(*) AS times,
               MAX(json_extract(q.value, '$.question'))
        FROM ({selected}) AS r, json_each(r.questions) AS q
        WHERE json_type(r.questions) = 'array' AND q.type = 'object'
          AND NOT EXISTS (
              SELECT 1 FROM {runs} AS c, json_each(c.settings, '$.answers') AS a
              WHERE c.parent_id = r.id AND a.key = json_extract(q.value, '$.key')
          )
        GROUP BY question_key ORDER BY times DESC, question_key LIMIT {limit}
    """,
    "postgresql": """
        SELECT q.value ->> 'key' AS question_key, COUNT(*) AS times, MAX(q.value ->> 'question')
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
        GROUP BY question_key ORDER BY times DESC, question_key LIMIT {limit}
    """,
}


@dataclass(frozen=True)
class OpenQuestion:
    key: str
    question: str  # one of the wordings it was asked in
    runs: int


def unanswered_questions(*, runs: QuerySet, limit: int = TOP_QUESTIONS) -> list[OpenQuestion]:
    """The clarifying questions of the finished runs that no later version answered, by key, most
    often left open first."""
    sql = {vendor: text.replace("{limit}", str(int(limit))) for vendor, text in QUESTIONS_SQL.items()}
    return [
        OpenQuestion(key or "", question or "", times)
        for key, times, question in _unnested(sql, runs.filter(status=DONE))
    ]


# --- The page ------------------------------------------------------------------------------------


def _summary(status_rows: list[dict], score_rows: list[dict], verdict_rows: list[dict]) -> dict:
    """The range's totals: runs, finished, failed, scored and their mean gain, judged by a model."""
    scored = sum(row["count"] for row in score_rows)
    return {
        "runs": sum(row["count"] for row in status_rows),
        "done": sum(row["count"] for row in status_rows if row["status"] == DONE),
        "failed": sum(row["count"] for row in status_rows if row["status"] == FAILED),
        "scored": scored,
        "mean_gain": _mean(sum(row["gain"] for row in score_rows), scored),
        "judged": sum(row["count"] for row in verdict_rows),
    }


def _computed(runs: QuerySet, start: date, end: date) -> dict:
    status_rows, score_rows, verdict_rows = (
        _status_rows(runs, start, end),
        _score_rows(runs),
        _verdict_rows(runs),
    )
    usage, effect = techniques_figures(runs=runs)
    return {
        "summary": _summary(status_rows, score_rows, verdict_rows),
        "figures": {
            "runs-per-day": runs_per_day(rows=status_rows, start=start, end=end),
            "scores-by-type": scores_by(rows=score_rows, group="type"),
            "scores-by-engine": scores_by(rows=score_rows, group="engine"),
            "scores-by-model": scores_by(rows=score_rows, group="model"),
            "verdicts-by-type": verdicts_by(rows=verdict_rows, group="type"),
            "verdicts-by-model": verdicts_by(rows=verdict_rows, group="model"),
            "technique-usage": usage,
            "technique-effect": effect,
            "prompt-types": type_distribution(rows=status_rows),
        },
        "most_improved": most_improved(runs=runs),
        "open_questions": unanswered_questions(runs=runs),
    }


def _fingerprint(scope: Scope, runs: QuerySet) -> str:
    """What changes whenever a figure could: the scope's run count and newest run (a run added or
    deleted, a question answered by a new version, even of a run in the range made later), and the
    range's finished and failed counts (a run that finished or failed: a finished run's scores,
    techniques and questions are written once, when it finishes)."""
    whole = scope.runs().aggregate(count=Count("id"), newest=Max("id"))
    in_range = runs.aggregate(
        count=Count("id"),
        done=Count("id", filter=Q(status=DONE)),
        failed=Count("id", filter=Q(status=FAILED)),
    )
    return f"{whole['count']}.{whole['newest']}.{in_range['count']}.{in_range['done']}.{in_range['failed']}"


def analytics(*, scope: Scope, start: date, end: date) -> dict:
    """Every figure and list of the Analytics page for the scope's runs of the range: from the cache
    while the runs' fingerprint is the same, else computed and kept."""
    runs = runs_in_range(scope=scope, start=start, end=end)
    whose = "site" if scope.site else f"user{scope.user_id}"
    digest = hashlib.sha256(_fingerprint(scope, runs).encode()).hexdigest()[:24]
    key = f"analytics:v1:{settings.TIME_ZONE}:{whose}:{start}:{end}:{digest}"
    kept = None
    with contextlib.suppress(Exception):  # a cache outage costs a recomputation, nothing more
        kept = cache.get(key)
    if isinstance(kept, dict):
        return kept
    found = _computed(runs, start, end)
    with contextlib.suppress(Exception):
        cache.set(key, found, KEEP_S)
    return found


def figure(*, name: str, scope: Scope, start: date, end: date) -> Figure:
    """One figure of the page, by its name (what a chart's JSON view serves)."""
    return analytics(scope=scope, start=start, end=end)["figures"][name]
