"""The built-in engine: the four stages without any model, deterministic and offline."""

from optimizer.builtin_engine.analysis import deconstruct, diagnose, select_techniques, with_answers
from optimizer.builtin_engine.design import design
from optimizer.builtin_engine.rubric import score

VERSION = "builtin-2"  # part of the result-cache key: bump when the engine's output changes

__all__ = ["VERSION", "deconstruct", "design", "diagnose", "optimize", "score", "select_techniques"]


def optimize(
    text: str,
    prompt_type: str,
    techniques: list[str] | None = None,
    *,
    keep_spans: bool = True,
    answers: dict | None = None,
) -> dict:
    """All four stages at once (``techniques=None`` is "Auto"), for scripts and benchmarks."""
    deconstruction = deconstruct(text, prompt_type)
    diagnosis = diagnose(text, prompt_type, deconstruction)
    chosen = (
        select_techniques(prompt_type, diagnosis, text)
        if techniques is None
        else [{"slug": slug, "reason": "chosen"} for slug in techniques]
    )
    result = design(
        text,
        prompt_type,
        deconstruction,
        [t["slug"] for t in chosen],
        keep_spans=keep_spans,
        diagnosis=diagnosis,
        answers=answers,
    )
    deconstruction, diagnosis = with_answers(deconstruction, diagnosis, answers)
    return {
        "deconstruction": deconstruction,
        "diagnosis": diagnosis,
        "selected": chosen,
        "design": result,
        "before": score(text),
        "after": score(result["optimized_prompt"]),
    }
