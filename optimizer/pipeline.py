"""The four-stage pipeline, one service whatever the engine: deconstruct → diagnose → design →
evaluate (the checklist on both texts and, with a model, its blind verdict on the pair). Called by
the task worker (see runqueue: which run starts next, the heartbeat, the recovery of a run whose
worker died); safe to deliver twice (the run is claimed with a conditional update, and only the
attempt that holds it may finish it).
"""

import logging
import time

from django.db.models import Count, Q, Sum
from django.utils import timezone

from costs.models import BUILTIN_PROVIDER, UsageRecord
from optimizer import caching, runqueue
from optimizer.builtin_engine.analysis import select_techniques, with_answers
from optimizer.builtin_engine.catalogue import PRESETS, TECHNIQUES
from optimizer.builtin_engine.rubric import score
from optimizer.engines import BuiltinEngine, LLMEngine, StageOutcome, run_coin
from optimizer.llm import breaker
from optimizer.models import ModelChoice, OptimizationRun

logger = logging.getLogger(__name__)

FAILED_MESSAGE = "The optimization failed unexpectedly ({error}). It has been logged; please try again."


def llm_models_available() -> bool:
    return ModelChoice.objects.usable().exists()


def engine_version(run_settings: dict) -> str:
    """Which engine a run with these settings uses, as the result cache's key part."""
    if run_settings["model"] == "builtin" or (run_settings["model"] == "auto" and not llm_models_available()):
        return BuiltinEngine.version
    return f"{LLMEngine.version}:{run_settings['model']}"


def _engine(run: OptimizationRun, version: str, progress: "_Progress"):
    if version == BuiltinEngine.version:
        return BuiltinEngine()
    choice = None
    if run.settings["model"] != "auto":
        choice = ModelChoice.objects.select_related("provider").filter(pk=run.settings["model"]).first()
    return LLMEngine(
        model=choice,
        user_id=run.owner_id,
        run_id=run.pk,
        resumed=run.attempts > 1,
        coin=run_coin(run.pk),
        progress=progress.note,
    )


def run_optimization(*, run_id: int) -> None:
    """Run the pipeline for this queued run (the optimize command, a test, an old task); nothing
    when it is not queued (done already, or another worker has it)."""
    run = runqueue.claim(run_id)
    if run is not None:
        _execute(run)


DRAIN_S = 10  # a token goes on taking queued runs of its engine while it is younger than this


def run_next(*, engine: str) -> int:
    """Run the fairest queued run of ``engine`` (see runqueue), if any is left; returns how many ran.

    A token goes on with the next fairest queued run of its engine while it is younger than
    ``DRAIN_S`` seconds, so a worker that finishes a batch's item starts the item the batch queued
    next at once: that item gets no token of its own (a trip through the broker costs more than a
    built-in run, and the ORM broker is polled twice a second). A token that stops while runs of its
    engine are still queued hands on one token, so the queue never waits for the sweep; one that
    dies is replaced by the sweep. It starts no run after ``DRAIN_S``, so a token stays well inside
    the cluster's task timeout (a model run is bounded by its four stages' call deadlines)."""
    deadline = time.monotonic() + DRAIN_S
    ran = 0
    while (run := runqueue.claim_next(engine)) is not None:
        _execute(run, draining=True)
        ran += 1
        if time.monotonic() >= deadline:
            if OptimizationRun.objects.filter(status=OptimizationRun.Status.QUEUED, engine=engine).exists():
                runqueue.enqueue(engine)
            break
    return ran


def _execute(run: OptimizationRun, *, draining: bool = False) -> None:
    """Any failure ends the run as failed with a message; a provider failure never does (the engine
    degrades to the built-in one instead). The heartbeat tells the sweep this worker is alive."""
    with runqueue.Heartbeat(run):
        try:
            _pipeline(run)
        except Exception as exc:
            logger.exception("optimization run %s failed", run.pk)
            runqueue.mine(run).update(
                status=OptimizationRun.Status.FAILED,
                error=FAILED_MESSAGE.format(error=type(exc).__name__),
                finished_at=timezone.now(),
            )
    if run.engine == OptimizationRun.Engine.LLM:  # only model calls keep answers and breaker counts
        runqueue.stage_answers_forget(run.pk)
        breaker.flush_pending()
    if run.batch_id is not None:
        from optimizer.batches.services import run_ended  # imports optimizer.services, which imports this

        run_ended(run, draining=draining)


def chosen_techniques(run_settings: dict, prompt_type: str, diagnosis: dict, text: str = "") -> list[dict]:
    """The techniques a run applies: Auto's (which read the prompt itself), a preset's, and those picked."""
    preset = run_settings.get("preset", "auto")
    if preset == "auto":
        chosen = select_techniques(prompt_type, diagnosis, text)
    elif preset in PRESETS:
        chosen = [
            {"slug": slug, "reason": f"Part of the {PRESETS[preset][0]} preset."}
            for slug in PRESETS[preset][2]
        ]
    else:
        chosen = []
    slugs = {item["slug"] for item in chosen}
    chosen += [
        {"slug": slug, "reason": "You picked it."}
        for slug in run_settings.get("techniques", [])
        if slug in TECHNIQUES and slug not in slugs
    ]
    return chosen


class _Progress:
    def __init__(self, run: OptimizationRun):
        self.run, self.timings, self.started = run, {}, time.perf_counter()
        self.answered: list[StageOutcome] = []
        self.calls: list[dict] = []  # per stage, how its model call went (the result page shows it)
        # Whether each stage is written as it starts, for the progress panel: not for the built-in
        # engine, whose four stages take milliseconds together (fewer than the writes would).
        self.live = True

    def stage(self, name: str) -> float:
        if self.live:
            runqueue.mine(self.run).update(
                stage=name, stage_note="", stage_timings=self.timings, heartbeat_at=timezone.now()
            )
        return time.perf_counter()

    def note(self, text: str) -> None:
        """What the stage is doing now ("retrying … (HTTP 503)"), shown live under it."""
        limit = OptimizationRun.stage_note.field.max_length
        runqueue.mine(self.run).update(stage_note=_clip(text, limit), heartbeat_at=timezone.now())

    def done(self, name: str, since: float, outcome: StageOutcome | None = None) -> None:
        self.timings[name] = round((time.perf_counter() - since) * 1000, 1)
        if outcome is not None:
            self.answered.append(outcome)
            if outcome.call is not None:
                self.calls.append({"stage": name, **outcome.call})


def _pipeline(run: OptimizationRun) -> None:
    text, prompt_type = run.prompt.text, run.settings["type"]
    keep_spans = run.settings.get("keep_spans", True)
    version = engine_version(run.settings)  # looked up once: the model list could change mid-run
    progress = _Progress(run)
    engine = _engine(run, version, progress)
    progress.live = engine.kind != "builtin"

    analysis_key = caching.analysis_key(text, prompt_type, engine.version, owner_id=run.owner_id)
    analysis = caching.cached(analysis_key)
    if analysis:
        deconstruction, diagnosis = analysis["deconstruction"], analysis["diagnosis"]
        progress.timings.update(deconstruct=0, diagnose=0)
    else:
        since = progress.stage("deconstruct")
        outcome = engine.deconstruct(text, prompt_type)
        deconstruction = outcome.data
        progress.done("deconstruct", since, outcome)
        since = progress.stage("diagnose")
        outcome = engine.diagnose(text, prompt_type, deconstruction)
        diagnosis = outcome.data
        progress.done("diagnose", since, outcome)
        if not engine.degraded:
            caching.analysis_set(analysis_key, {"deconstruction": deconstruction, "diagnosis": diagnosis})

    chosen = chosen_techniques(run.settings, prompt_type, diagnosis, text)
    since = progress.stage("design")
    design = engine.design(
        text,
        prompt_type,
        deconstruction,
        diagnosis,
        [item["slug"] for item in chosen],
        keep_spans=keep_spans,
        answers=run.settings.get("answers") or None,
    )
    progress.done("design", since, design)

    since = progress.stage("evaluate")
    optimized = design.data["optimized_prompt"]
    before, after = score(text), score(optimized)
    verdict = engine.compare(text, optimized, prompt_type)
    progress.done("evaluate", since, verdict)

    # What the author answered is settled: shown as resolved, not as an open issue or a "none".
    deconstruction, diagnosis = with_answers(deconstruction, diagnosis, run.settings.get("answers"))
    reasons = {item["slug"]: item["reason"] for item in chosen}
    provider, model = _answered_by(progress.answered) if engine.kind == "llm" else ("", "")
    totals = (  # the built-in engine makes no model call, so it leaves no usage record
        UsageRecord.objects.filter(run_id=run.pk).aggregate(
            total_cost=Sum("cost", default=0),
            unpriced=Count("id", filter=Q(cost__isnull=True) & ~Q(status="cache_hit")),
        )
        if engine.kind != "builtin"
        else {"total_cost": 0, "unpriced": 0}
    )
    values = {
        "engine": engine.kind,
        "provider": provider,
        "model": model,
        "deconstruction": deconstruction,
        "diagnosis": diagnosis,
        "techniques": [
            {**item, "reason": reasons.get(item["slug"], "")} for item in design.data["techniques"]
        ],
        "optimized_text": optimized,
        "changes": design.data["changes"],
        "questions": design.data.get("questions", []),
        "scores": {"before": before, "after": after} | ({"verdict": verdict.data} if verdict else {}),
        "score_before": before["overall"],
        "score_after": after["overall"],
        "score_gain": after["overall"] - before["overall"],
        "model_selection": _in_stage_order(getattr(engine, "selections", {})),
    }
    finished = timezone.now()
    finished_here = runqueue.mine(run).update(
        **values,
        status=OptimizationRun.Status.DONE,
        stage="",
        stage_note="",
        stage_timings=progress.timings,
        stage_calls=progress.calls,
        cost=totals["total_cost"],
        unpriced_calls=totals["unpriced"],
        analysis_cached=bool(analysis),
        degraded_reason=engine.degraded,
        finished_at=finished,
        duration_ms=round((time.perf_counter() - progress.started) * 1000),
    )
    if not finished_here:
        logger.warning("run %s was queued again while this worker ran it; its result is left out", run.pk)
        return
    if not engine.degraded:
        caching.result_set(caching.result_key(text, run.settings, version, owner_id=run.owner_id), values)


def _answered_by(outcomes: list[StageOutcome]) -> tuple[str, str]:
    """The providers and the models that answered the stages, each once, in stage order ("OpenAI",
    "gpt-5-nano, gpt-5-mini"); stages the built-in engine answered are left out (the run's degraded
    reason tells of them)."""
    answered = [o for o in outcomes if o.model and o.provider != BUILTIN_PROVIDER]
    providers = ", ".join(dict.fromkeys(o.provider for o in answered))
    models = ", ".join(dict.fromkeys(o.model for o in answered))
    return _clip(providers, OptimizationRun.provider.field.max_length), _clip(
        models, OptimizationRun.model.field.max_length
    )


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _in_stage_order(selections: dict) -> list[dict]:
    """A list, as JSON objects do not keep their order in PostgreSQL."""
    return [{"stage": stage, **selections[stage]} for stage in OptimizationRun.STAGES if stage in selections]
