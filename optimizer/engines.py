"""The two engines behind the pipeline's stages, with one interface.

``BuiltinEngine`` calls the rule-based stages directly (no network, no cost). ``LLMEngine`` makes
each stage a structured call through the gateway, with the built-in stage as the gateway's
fallback; the first stage a model cannot answer switches the engine to built-in for the rest of
the run, and ``degraded`` says why. With a model, the run ends with ``compare``: one blind
pairwise judgement of the original against the rewrite.
"""

import hashlib
import itertools
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from optimizer.builtin_engine import builtin
from optimizer.builtin_engine.analysis import ISSUE_FIX
from optimizer.builtin_engine.catalogue import TECHNIQUES, TYPES
from optimizer.builtin_engine.spans import missing_spans
from optimizer.llm import gateway, routing
from optimizer.llm.types import LLMRequest, Message
from optimizer.meta_prompts import (
    COMPARE_SCHEMA,
    DECONSTRUCT_SCHEMA,
    DESIGN_SCHEMA,
    DIAGNOSE_SCHEMA,
    JUDGE_CRITERIA,
    JUDGE_SYSTEM,
    SYSTEM,
    clean_questions,
    design_allowance,
    design_instructions,
    slug,
    unfenced,
)
from optimizer.models import ModelChoice

LLM_VERSION = "llm-2"  # part of the result-cache key, like builtin.VERSION: bump when a prompt changes


@dataclass
class StageOutcome:
    data: dict
    provider: str = builtin.VERSION
    model: str = ""
    cost: Decimal | None = Decimal(0)
    cached: bool = False
    call: dict | None = None  # how a model call answered it (see LLMEngine._ask)


class BuiltinEngine:
    kind = "builtin"
    version = builtin.VERSION
    degraded = ""

    def deconstruct(self, text: str, prompt_type: str) -> StageOutcome:
        return StageOutcome(builtin.deconstruct(text, prompt_type))

    def diagnose(self, text: str, prompt_type: str, deconstruction: dict) -> StageOutcome:
        return StageOutcome(builtin.diagnose(text, prompt_type, deconstruction))

    def design(
        self, text, prompt_type, deconstruction, diagnosis, techniques, *, keep_spans, answers=None
    ) -> StageOutcome:
        return StageOutcome(
            _builtin_design(text, prompt_type, deconstruction, diagnosis, techniques, keep_spans, answers)
        )

    def compare(self, original: str, rewrite: str, prompt_type: str) -> StageOutcome | None:
        return None  # only a model judges the pair; the checklist scores both texts anyway


def _builtin_design(text, prompt_type, deconstruction, diagnosis, techniques, keep_spans, answers) -> dict:
    """The built-in design stage: the built-in engine's answer, and the model's fallback."""
    return builtin.design(
        text,
        prompt_type,
        deconstruction,
        techniques,
        keep_spans=keep_spans,
        diagnosis=diagnosis,
        answers=answers,
    )


def _fair_coin() -> bool:
    return secrets.randbelow(2) == 1


def _call_record(result) -> dict:
    """What the result page shows of one model call: who answered, at what cost, and every model
    or request that failed before (with Auto, the models it passed over are in the selection)."""
    return {
        "answered_by": "the built-in engine" if result.builtin else f"{result.provider} / {result.model}",
        "builtin": result.builtin,
        "cached": result.cached,
        "cost": None if result.cost is None else str(result.cost),
        "retried": list(result.retried),
        "failed": [skip.as_record() for skip in result.skipped],
    }


def run_coin(run_id: int) -> Callable[[], bool]:
    """A fair coin that falls the same way in every attempt of one run: a run started again after
    its worker died asks the judge the same question, so the answer it paid for is found again."""
    draws = itertools.count()
    return lambda: hashlib.sha256(f"compare:{run_id}:{next(draws)}".encode()).digest()[0] & 1 == 1


@dataclass
class LLMEngine:
    """Stages as structured calls through the gateway; ``model`` None lets the gateway choose.

    ``coin`` decides, for each comparison, whether the original is shown as Prompt A (True) or as
    Prompt B; tests pass a fixed one. ``resumed``: the run was started again after its worker died
    (the gateway then finds the answers it paid for already).
    """

    model: ModelChoice | None
    user_id: int | None
    run_id: int | None
    resumed: bool = False
    progress: Callable[[str], None] | None = field(default=None, repr=False)  # retries, failovers
    kind: str = "llm"
    version: str = LLM_VERSION
    degraded: str = ""
    selections: dict = field(default_factory=dict)  # with Auto: stage -> the choice and its reasons
    coin: Callable[[], bool] = field(default=_fair_coin, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _fall_back(self, reason: str) -> None:
        with self._lock:
            if not self.degraded:
                self.degraded = reason

    def _ask(
        self,
        operation: str,
        schema: dict,
        messages: tuple[Message, ...],
        fallback: Callable[[], dict],
        needs: routing.Needs,
        *,
        max_output_tokens: int = 2048,
    ) -> StageOutcome:
        if self.degraded:
            return StageOutcome(fallback())
        request = LLMRequest(
            operation=operation,
            messages=messages,
            schema=schema,
            schema_name=operation,
            max_output_tokens=max_output_tokens,
        )
        result = gateway.call(
            request,
            builtin=fallback,
            model=self.model,
            user_id=self.user_id,
            run_id=self.run_id,
            needs=needs,
            resumed=self.resumed,
            progress=self.progress,
        )
        if result.selection:
            with self._lock:
                self.selections.setdefault(operation, result.selection)
        if result.builtin:
            reasons = "; ".join(str(skip) for skip in result.skipped) or "no language model is enabled"
            self._fall_back(f"{operation}: {reasons}")
        return StageOutcome(
            result.data, result.provider, result.model, result.cost, result.cached, call=_call_record(result)
        )

    def _call(
        self,
        operation: str,
        schema: dict,
        instructions: str,
        text: str,
        fallback: Callable[[], dict],
        *,
        prompt_type: str = "general",
        techniques: tuple[str, ...] = (),
        max_output_tokens: int = 2048,
    ) -> StageOutcome:
        """One stage about one prompt: the principles, the instructions, then the prompt in tags."""
        messages = (
            Message("system", SYSTEM),
            Message("user", f"{instructions}\n\n<prompt>\n{text}\n</prompt>"),
        )
        needs = routing.Needs(operation, len(text), prompt_type, techniques)
        return self._ask(operation, schema, messages, fallback, needs, max_output_tokens=max_output_tokens)

    def deconstruct(self, text: str, prompt_type: str) -> StageOutcome:
        return self._call(
            "deconstruct",
            DECONSTRUCT_SCHEMA,
            f"Deconstruct this {TYPES[prompt_type].lower()} prompt: its goal, main task verb, the role it "
            "gives, the audience, its inputs and placeholders, its constraints, the output format it asks "
            "for, its language, and what information is missing. Use empty strings and lists for what is "
            "absent.",
            text,
            lambda: builtin.deconstruct(text, prompt_type),
            prompt_type=prompt_type,
        )

    def diagnose(self, text: str, prompt_type: str, deconstruction: dict) -> StageOutcome:
        codes = "\n".join(f"- {code}: {title}" for code, (_, title, _) in ISSUE_FIX.items())
        language = deconstruction.get("language") or "the prompt's own language"
        outcome = self._call(
            "diagnose",
            DIAGNOSE_SCHEMA,
            f"Diagnose this {TYPES[prompt_type].lower()} prompt. First work out what it is for and what a "
            "good answer to it needs. Then list its real weaknesses: only those that would make a capable "
            "model's answer worse than the author wants, not every item below that could apply. For each "
            "give a code from this list (or 'other'), a title, a severity, one sentence of detail that "
            "points at the prompt's own words, and a one-line fix. A prompt that works can have no "
            f"issues.\n{codes}\n\n"
            "Then, in `questions`, ask what only the author can tell: who the answer is for, how long it "
            "should be, its tone, what a successful answer does, an example, the background. Ask only "
            "where the answer would change the prompt and cannot be read from it. At most five, the most "
            "important first; each with why it matters and two or three example answers. Write the "
            f"questions, their reasons and examples in {language}. `key` is a short lowercase English "
            "word for the subject: audience, length, tone, success, examples, context, format, or "
            "another. No questions is the right answer when the prompt already says what it needs.\n\n"
            f"Its deconstruction: {json.dumps(deconstruction, ensure_ascii=False)}",
            text,
            lambda: builtin.diagnose(text, prompt_type, deconstruction),
            prompt_type=prompt_type,
        )
        outcome.data["questions"] = clean_questions(outcome.data.get("questions", []))
        return outcome

    def design(
        self, text, prompt_type, deconstruction, diagnosis, techniques, *, keep_spans, answers=None
    ) -> StageOutcome:
        def fallback():
            return _builtin_design(
                text, prompt_type, deconstruction, diagnosis, techniques, keep_spans, answers
            )

        given = {slug(key): str(answer).strip() for key, answer in (answers or {}).items()}
        given = {key: answer for key, answer in given.items() if key and answer}
        outcome = self._call(
            "design",
            DESIGN_SCHEMA,
            design_instructions(text, prompt_type, deconstruction, diagnosis, techniques, given, keep_spans),
            text,
            fallback,
            prompt_type=prompt_type,
            techniques=tuple(techniques),
            max_output_tokens=design_allowance(text),
        )
        if "techniques" in outcome.data:  # the built-in design answered
            return outcome
        optimized = unfenced(outcome.data["optimized_prompt"], text)
        lost = missing_spans(text, optimized) if keep_spans else []
        if lost:
            self._fall_back(f"design: the model's rewrite dropped {lost[0].text!r}")
            call = outcome.call and outcome.call | {"discarded": "its rewrite dropped part of the prompt"}
            return StageOutcome(fallback(), cost=outcome.cost, call=call)
        skipped = {item["slug"]: item["why"] for item in outcome.data.get("skipped_techniques", [])}
        outcome.data.update(
            optimized_prompt=optimized,
            questions=clean_questions(outcome.data.get("questions", []), answered=set(given)),
            techniques=[
                {
                    "slug": slug,
                    "name": TECHNIQUES[slug].name,
                    "applied": slug not in skipped,
                    "note": skipped.get(slug, ""),
                }
                for slug in techniques
            ],
        )
        return outcome

    def compare(self, original: str, rewrite: str, prompt_type: str) -> StageOutcome | None:
        """The model's blind verdict on the pair: the two texts go out as Prompt A and Prompt B in the
        order the coin chose, and the answer comes back in terms of "original" and "rewrite". None
        when the engine is degraded or no model gave a verdict."""
        if self.degraded:
            return None
        if original.strip() == rewrite.strip():
            return StageOutcome(
                {
                    "winner": "tie",
                    "confidence": "high",
                    "criteria": [],
                    "summary": "The rewrite is the original, unchanged.",
                }
            )
        original_is_a = self.coin()
        first, second = (original, rewrite) if original_is_a else (rewrite, original)
        criteria = "\n".join(
            f"{n}. {name}: {what}" for n, (name, what) in enumerate(JUDGE_CRITERIA.items(), 1)
        )
        messages = (
            Message("system", JUDGE_SYSTEM),
            Message(
                "user",
                f"Compare two versions of the same {TYPES[prompt_type].lower()} prompt.\n\n"
                "For each criterion, in this order, write your reasoning and say which version is better "
                f"on it (A, B or tie):\n{criteria}\n\n"
                "Then give the verdict (A, B or tie), your confidence (low, medium or high), and a summary "
                "of one or two sentences that the prompt's author can read.\n\n"
                f"<prompt_a>\n{first}\n</prompt_a>\n\n<prompt_b>\n{second}\n</prompt_b>",
            ),
        )
        needs = routing.Needs("evaluate", len(original) + len(rewrite), prompt_type)
        outcome = self._ask("evaluate", COMPARE_SCHEMA, messages, dict, needs)
        sides = {"A": "original", "B": "rewrite"} if original_is_a else {"A": "rewrite", "B": "original"}
        verdict = _unblind_verdict(outcome.data, {**sides, "tie": "tie"})
        if verdict is None:
            return None
        outcome.data = verdict
        return outcome


def _unblind_verdict(data: dict, sides: dict[str, str]) -> dict | None:
    """The model's answer in terms of the original and the rewrite; None for no usable verdict
    (the built-in fallback answers ``{}``)."""
    if data.get("verdict") not in sides or data.get("confidence") not in ("low", "medium", "high"):
        return None
    by_name = {}
    for item in data.get("criteria") or []:
        if item.get("name") in JUDGE_CRITERIA and item.get("better") in sides:
            by_name.setdefault(item["name"], item)
    return {
        "winner": sides[data["verdict"]],
        "confidence": data["confidence"],
        "criteria": [
            {
                "name": name,
                "reasoning": _unblind(by_name[name].get("reasoning", ""), sides),
                "better": sides[by_name[name]["better"]],
            }
            for name in JUDGE_CRITERIA
            if name in by_name
        ],
        "summary": _unblind(str(data.get("summary", "")), sides),
    }


_BLIND_NAME = re.compile(r"\b(?:[Pp]rompt|[Vv]ersion) ([AB])\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n\s*)$")


def _unblind(text: str, sides: dict[str, str]) -> str:
    """ "Prompt A is clearer than Prompt B" -> "The rewrite is clearer than the original"."""

    def name(match: re.Match) -> str:
        said = f"the {sides[match.group(1)]}"
        return said.capitalize() if _SENTENCE_START.search(text[: match.start()]) else said

    return _BLIND_NAME.sub(name, str(text))
