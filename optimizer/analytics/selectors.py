"""What the Analytics page shows: how much the runs of a scope and date range improved their prompts,
by prompt type, engine, model and technique, the model's verdicts, and the questions left open.

Every figure is one aggregate query over the range's runs (grouped in the database, so its cost
does not grow with the rows it returns to Python); the per-technique and per-question figures
unnest the runs' JSON lists in SQL (SQLite's ``json_each``, PostgreSQL's ``jsonb_array_elements``).
"""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import connections
from django.db.models import Count, Q, QuerySet, Sum
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


# --- Runs per day --------------------------------------------------------------------------------


def runs_per_day(*, runs: QuerySet, start: date, end: date) -> Figure:
    """Finished runs of each local day by engine (versions edited by hand apart), and failed runs."""
    since, until = range_bounds(start, end)
    day = local_date("created_at", since, until, vendor=connections[runs.db].vendor)
    rows = (
        runs.filter(status__in=(DONE, FAILED))
        .annotate(day=day, edited=KeyTransform("edited", "settings"))
        .values("day", "engine", "status", "edited")
        .annotate(count=Count("id"))
    )
    counts: dict[tuple[date, str], int] = {}
    for row in rows:
        column = "Failed" if row["status"] == FAILED else _engine(row["engine"], row["edited"])
        counts[row["day"], column] = counts.get((row["day"], column), 0) + row["count"]
    days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
    columns = [name for name in (*ENGINE_LABELS.values(), "Failed") if any(key[1] == name for key in counts)]
    return Figure(
        "Day",
        [day.isoformat() for day in days] if counts else [],
        [Series(name, [counts.get((day, name), 0) for day in days]) for name in columns],
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


def scores_by(*, runs: QuerySet, group: str, rows: list[dict] | None = None) -> Figure:
    """Mean checklist score before and after, and the mean gain, of the finished runs per ``group``
    (prompt type, engine or model), most runs first."""
    rows = _score_rows(runs) if rows is None else rows
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


def verdicts_by(*, runs: QuerySet, group: str) -> Figure:
    """How many finished runs the model judged better, tied or worse than their original, per prompt
    type or model; no rows when no run in the range has a verdict."""
    keys = ("prompt__type",) if group == "type" else ("engine", "provider", "model")
    rows = (
        runs.filter(status=DONE, scores__verdict__winner__in=[winner for winner, _ in VERDICTS])
        .annotate(winner=KT("scores__verdict__winner"))
        .values(*keys, "winner")
        .annotate(count=Count("id"))
    )
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
    "sqlite": """
        SELECT json_extract(t.value, '$.slug') AS slug,
               COUNT(*),
               SUM(CASE WHEN json_extract(t.value, '$.applied') = 1 THEN 1 ELSE 0 END),
               SUM(CASE WHEN json_extract(t.value, '$.applied') = 1 AND r.score_gain IS NOT NULL
                        THEN 1 ELSE 0 END),
               SUM(CASE WHEN json_extract(t.value, '$.applied') = 1 THEN r.score_gain ELSE 0 END),
               SUM(CASE WHEN json_extract(t.value, '$.applied') = 1
                         AND json_extract(r.scores, '$.verdict.winner') IN ('rewrite', 'tie', 'original')
                        THEN 1 ELSE 0 END),
               SUM(CASE WHEN json_extract(t.value, '$.applied') = 1
                         AND json_extract(r.scores, '$.verdict.winner') = 'rewrite' THEN 1 ELSE 0 END)
        FROM {runs} AS r, json_each(r.techniques) AS t
        WHERE r.id IN ({ids}) AND json_type(r.techniques) = 'array' AND t.type = 'object'
        GROUP BY slug
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
        FROM {runs} AS r
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(r.techniques) = 'array' THEN r.techniques ELSE '[]'::jsonb END
        ) AS t(value)
        WHERE r.id IN ({ids}) AND jsonb_typeof(t.value) = 'object'
        GROUP BY slug
    """,
}


def _unnested(sql: dict[str, str], runs: QuerySet) -> list[tuple]:
    """The rows of one of the vendor-specific queries above, over the runs of ``runs``."""
    connection = connections[runs.db]
    ids, params = runs.values("id").query.sql_with_params()
    table = connection.ops.quote_name(OptimizationRun._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql[connection.vendor].format(runs=table, ids=ids), params)
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


# --- Prompt types --------------------------------------------------------------------------------


def type_distribution(*, runs: QuerySet) -> Figure:
    """Runs and distinct prompts per prompt type, most runs first."""
    rows = (
        runs.values("prompt__type")
        .annotate(runs=Count("id"), prompts=Count("prompt", distinct=True))
        .order_by("-runs", "prompt__type")
    )
    rows = list(rows)
    return Figure(
        "Prompt type",
        [_type(row["prompt__type"]) for row in rows],
        [Series("Runs", [row["runs"] for row in rows]), Series("Prompts", [row["prompts"] for row in rows])],
    )


# --- Lists ---------------------------------------------------------------------------------------


IMPROVED_FIELDS = (
    "id", "owner_id", "owner__username", "prompt_id", "prompt__title", "prompt__type", "engine",
    "provider", "model", "score_before", "score_after", "score_gain", "created_at",
)  # fmt: skip


def most_improved(*, runs: QuerySet, limit: int = TOP_PROMPTS) -> list[OptimizationRun]:
    """The finished runs of the largest checklist gain, one per prompt (its best run), at most
    ``limit``; only the columns the list shows are read."""
    best = (
        _scored(runs)
        .filter(score_gain__gt=0)
        .select_related("prompt", "owner")
        .only(*IMPROVED_FIELDS)
        .order_by("-score_gain", "-created_at", "-id")
    )
    # A prompt's later versions may follow its best run: read a few more than shown.
    kept, seen = [], set()
    for run in best[: limit * 4]:
        if run.prompt_id not in seen:
            seen.add(run.prompt_id)
            kept.append(run)
    return kept[:limit]


# A question of a finished run is left unanswered when no version made from that run (a child) carries
# an answer under its key (``run_answer`` stores them in the child's ``settings["answers"]``).
QUESTIONS_SQL = {
    "sqlite": """
        SELECT json_extract(q.value, '$.key') AS question_key, COUNT(*) AS times,
               MAX(json_extract(q.value, '$.question'))
        FROM {runs} AS r, json_each(r.questions) AS q
        WHERE r.id IN ({ids}) AND json_type(r.questions) = 'array' AND q.type = 'object'
          AND NOT EXISTS (
              SELECT 1 FROM {runs} AS c, json_each(c.settings, '$.answers') AS a
              WHERE c.parent_id = r.id AND a.key = json_extract(q.value, '$.key')
          )
        GROUP BY question_key ORDER BY times DESC, question_key LIMIT {limit}
    """,
    "postgresql": """
        SELECT q.value ->> 'key' AS question_key, COUNT(*) AS times, MAX(q.value ->> 'question')
        FROM {runs} AS r
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(r.questions) = 'array' THEN r.questions ELSE '[]'::jsonb END
        ) AS q(value)
        WHERE r.id IN ({ids}) AND jsonb_typeof(q.value) = 'object'
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


def summary(*, runs: QuerySet) -> dict:
    """The range's totals: runs, finished, failed, scored and their mean gain, verdicts."""
    totals = runs.aggregate(
        runs=Count("id"),
        done=Count("id", filter=Q(status=DONE)),
        failed=Count("id", filter=Q(status=FAILED)),
        scored=Count("id", filter=Q(status=DONE, score_gain__isnull=False)),
        gain=Sum("score_gain", filter=Q(status=DONE), default=0),
        judged=Count("id", filter=Q(status=DONE, scores__verdict__winner__in=[w for w, _ in VERDICTS])),
    )
    return totals | {"mean_gain": _mean(totals["gain"], totals["scored"])}


def analytics(*, scope: Scope, start: date, end: date) -> dict:
    """Every figure and list of the Analytics page for the scope's runs of the range."""
    runs = runs_in_range(scope=scope, start=start, end=end)
    score_rows = _score_rows(runs)
    usage, effect = techniques_figures(runs=runs)
    return {
        "summary": summary(runs=runs),
        "figures": {
            "runs-per-day": runs_per_day(runs=runs, start=start, end=end),
            "scores-by-type": scores_by(runs=runs, group="type", rows=score_rows),
            "scores-by-engine": scores_by(runs=runs, group="engine", rows=score_rows),
            "scores-by-model": scores_by(runs=runs, group="model", rows=score_rows),
            "verdicts-by-type": verdicts_by(runs=runs, group="type"),
            "verdicts-by-model": verdicts_by(runs=runs, group="model"),
            "technique-usage": usage,
            "technique-effect": effect,
            "prompt-types": type_distribution(runs=runs),
        },
        "most_improved": most_improved(runs=runs),
        "open_questions": unanswered_questions(runs=runs),
    }


def figure(*, name: str, scope: Scope, start: date, end: date) -> Figure:
    """One figure of the page, by its name (what a chart's JSON view serves)."""
    runs = runs_in_range(scope=scope, start=start, end=end)
    match name:
        case "runs-per-day":
            return runs_per_day(runs=runs, start=start, end=end)
        case "scores-by-type" | "scores-by-engine" | "scores-by-model":
            return scores_by(runs=runs, group=name.removeprefix("scores-by-"))
        case "verdicts-by-type" | "verdicts-by-model":
            return verdicts_by(runs=runs, group=name.removeprefix("verdicts-by-"))
        case "technique-usage":
            return techniques_figures(runs=runs)[0]
        case "technique-effect":
            return techniques_figures(runs=runs)[1]
        case "prompt-types":
            return type_distribution(runs=runs)
    raise ValueError(f"no figure named {name!r}")
