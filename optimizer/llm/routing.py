"""Smart model selection for "Auto": the cheapest suitable model for each call.

A stage needs a tier (fast < balanced < best) — see ``tier_needed``. Among the enabled models whose
API key is set, whose circuit breaker is not open and whose estimated cost for this call fits every
hard budget, the cheapest one of that tier or above is chosen; the others follow it as failover, so
a failed call still goes down the list to the built-in engine. The reasons, and why each other model
was passed over, travel with the answer and are stored on the run.
"""

import os
from dataclasses import dataclass, field
from decimal import Decimal

from costs import snapshot
from costs.budgets import headroom
from costs.models import usd
from costs.selectors import price_overrides
from optimizer.llm.breaker import open_among
from optimizer.llm.key_names import key_variable_refusal
from optimizer.llm.pricing import PricePerMillion, TokenUsage, call_cost, catalog_prices
from optimizer.llm.structured import schema_fingerprint
from optimizer.llm.types import LLMRequest
from optimizer.models import ModelChoice

CHARS_PER_TOKEN = 4
TIERS = [ModelChoice.Tier.FAST, ModelChoice.Tier.BALANCED, ModelChoice.Tier.BEST]
LONG_PROMPT_CHARS = 6_000  # about 1,500 tokens: past this, every stage needs a stronger model
EXPERT_TYPES = {"coding", "technical", "analytical", "data"}
DEMANDING_TECHNIQUES = {"tree-of-thoughts", "self-consistency", "react", "least-to-most", "plan-and-solve"}


@dataclass(frozen=True)
class Needs:
    """What the call is for: the stage, the prompt's length and type, the techniques to apply."""

    operation: str
    prompt_chars: int
    prompt_type: str = "general"
    techniques: tuple[str, ...] = ()


def tier_needed(needs: Needs) -> tuple[str, list[str]]:
    """The lowest tier that suits the call, and the reasons, in words.

    Reading and scoring a prompt (deconstruct, diagnose, evaluate) is a fast model's work; rewriting it
    (design) needs a balanced one. One tier more for a long prompt, for diagnosing or rewriting a
    coding, technical, analytical or data prompt, and for rewriting with a technique that structures
    reasoning (tree of thoughts, self-consistency, ReAct, least-to-most, plan-and-solve).
    """
    stage = needs.operation.split(":")[0]
    rank = 1 if stage == "design" else 0
    reasons = ["rewriting a prompt" if stage == "design" else f"the {stage} stage"]
    if needs.prompt_chars > LONG_PROMPT_CHARS:
        rank += 1
        reasons.append(f"a long prompt ({needs.prompt_chars:,} characters)")
    if needs.prompt_type in EXPERT_TYPES and stage in ("diagnose", "design"):
        rank += 1
        article = "an" if needs.prompt_type[:1] in "aeiou" else "a"
        reasons.append(f"{article} {needs.prompt_type} prompt")
    demanding = sorted(DEMANDING_TECHNIQUES.intersection(needs.techniques))
    if demanding and stage == "design":
        rank += 1
        reasons.append(f"the {', '.join(demanding)} technique{'s' if len(demanding) > 1 else ''}")
    return TIERS[min(rank, len(TIERS) - 1)], reasons


def estimate_cost(choice: ModelChoice, request: LLMRequest, own: PricePerMillion | None) -> Decimal | None:
    """A ceiling for the budget gate: the prompt's estimated tokens and the full output allowance."""
    prompt_chars = sum(len(m.content) for m in request.messages) + len(schema_fingerprint(request.schema))
    usage = TokenUsage(
        input_tokens=prompt_chars // CHARS_PER_TOKEN + 1, output_tokens=request.max_output_tokens
    )
    prices = own or catalog_prices(choice.provider.price_catalog, choice.model_id)
    if prices is None:
        return None
    return call_cost(catalog="", model_id=choice.model_id, own=prices, usage=usage)


@dataclass
class Selection:
    """The order to try the models in, and the story of the choice."""

    order: list[ModelChoice]
    tier: str
    reason: str
    passed_over: list[dict] = field(default_factory=list)  # {"model": ..., "why": ...}

    @property
    def chosen(self) -> ModelChoice | None:
        return self.order[0] if self.order else None

    def as_record(self) -> dict:
        """What the run stores and shows."""
        chosen = self.chosen
        return {
            "chosen": f"{chosen.provider.name} / {chosen.model_id}" if chosen else "",
            "tier": self.tier,
            "reason": self.reason,
            "passed_over": self.passed_over,
        }


def _label(choice: ModelChoice) -> str:
    return f"{choice.provider.name} / {choice.model_id}"


def _unavailable(choice: ModelChoice, estimate: Decimal | None, room: Decimal | None, open_breakers) -> str:
    """Why the model cannot take this call now, or "" when it can."""
    if key_variable_refusal(choice.provider.api_key_env):  # never tell whether such a variable is set
        return "its API key variable is refused (not a provider key variable)"
    if choice.provider.api_key_env and not os.environ.get(choice.provider.api_key_env, "").strip():
        return f"no API key ({choice.provider.api_key_env} is not set)"
    if choice.breaker_key in open_breakers:
        return "its circuit breaker is open (recent failures)"
    if room is not None and estimate is None:
        return "it has no price, and a hard budget applies"
    if room is not None and estimate > room:
        return f"its estimate ({usd(estimate)}) exceeds what the hard budget has left ({usd(room)})"
    return ""


def select(request: LLMRequest, needs: Needs, *, user_id: int | None) -> Selection:
    """Choose the model for one call (see the module's docstring)."""
    models = list(ModelChoice.objects.usable())
    tier, tier_reasons = tier_needed(needs)
    if not models:
        return Selection([], tier, "no language model is enabled")
    costs = snapshot.current()  # prices and budgets, one cache read while nothing changed
    overrides = price_overrides(model_ids=[choice.pk for choice in models], snapshot=costs)
    estimates = {choice.pk: estimate_cost(choice, request, overrides.get(choice.pk)) for choice in models}
    open_breakers = open_among([choice.breaker_key for choice in models])
    room = headroom(user_id, snapshot=costs)
    needed = TIERS.index(tier)

    eligible, passed = [], []
    for choice in models:
        why = _unavailable(choice, estimates[choice.pk], room, open_breakers)
        if why:
            passed.append((choice, why))
        else:
            eligible.append(choice)

    def cost_key(choice: ModelChoice):
        estimate = estimates[choice.pk]
        return (estimate is None, estimate or Decimal(0), models.index(choice))

    suitable = sorted((c for c in eligible if TIERS.index(c.tier) >= needed), key=cost_key)
    if suitable:
        chosen = suitable[0]
        ranked = (
            "the cheapest available model"
            if estimates[chosen.pk] is not None
            else "first in fallback order among the available models (none has a price to compare)"
        )
        reason = (
            f"{ranked} of the {tier} tier or above ({', '.join(tier_reasons)} needs "
            f"{tier}); estimated {_estimate_text(estimates[chosen.pk])} for this call"
        )
    elif eligible:
        chosen = sorted(eligible, key=lambda c: (-TIERS.index(c.tier), cost_key(c)))[0]
        reason = (
            f"no available model is of the {tier} tier this call needs ({', '.join(tier_reasons)}); "
            f"the strongest available one, estimated {_estimate_text(estimates[chosen.pk])}"
        )
    else:
        return Selection(
            [choice for choice, _why in passed],
            tier,
            "no model is available: each is tried in failover order, then the built-in engine answers",
            [{"model": _label(choice), "why": why} for choice, why in passed],
        )

    for choice in eligible:
        if choice is chosen:
            continue
        if TIERS.index(choice.tier) < needed:
            why = f"its tier ({choice.tier}) is below the {tier} this call needs"
        else:
            why = _costlier(estimates[choice.pk], estimates[chosen.pk])
        passed.append((choice, why))
    rest = sorted((c for c in eligible if c is not chosen), key=cost_key)
    blocked = [choice for choice, _why in passed if choice not in eligible]
    order = [chosen, *rest, *blocked]  # blocked ones last: the gateway re-checks them as it goes
    passed_over = [
        {"model": _label(choice), "why": why}
        for choice, why in sorted(passed, key=lambda p: models.index(p[0]))
    ]
    return Selection(order, tier, reason, passed_over)


def _costlier(estimate: Decimal | None, chosen: Decimal | None) -> str:
    """Why a model of a suitable tier went after the chosen one, from what is known of their prices."""
    if estimate is None and chosen is None:
        return "it comes later in fallback order (neither has a price to compare)"
    if estimate is None:
        return "it has no price, so models with a known cost go first"
    if estimate == chosen:
        return f"it costs the same (estimated {_estimate_text(estimate)}) and comes later in fallback order"
    return f"it costs more (estimated {_estimate_text(estimate)})"


def _estimate_text(estimate: Decimal | None) -> str:
    return "an unknown cost (no price)" if estimate is None else f"at most {usd(estimate)}"
