"""What a batch would cost with each enabled model, before it starts, and what the hard budgets say.

An estimate from the prompts' lengths, not a quote: each item makes four calls (deconstruct,
diagnose, design, the blind comparison), each quoting the prompt with its instructions; the design
also quotes what the first two stages found and answers with the rewrite, the comparison quotes the
rewrite too. The answers of the other stages are short. Every call's real usage is recorded as it
happens, and the budget gate still decides each call.
"""

from dataclasses import dataclass
from decimal import Decimal

from costs import budgets
from costs.selectors import price_overrides
from optimizer import meta_prompts
from optimizer.llm.pricing import TokenUsage, call_cost, catalog_prices
from optimizer.models import ModelChoice

CHARS_PER_TOKEN = meta_prompts.CHARS_PER_TOKEN
CALLS_PER_ITEM = 4
REWRITE_GROWTH = 1.3  # a rewrite is about this much longer than its prompt (the CSV, built-in engine)
# Instructions and answers of one item's four calls, in tokens, besides the prompt and its rewrite.
FIXED_INPUT = (
    3 * len(meta_prompts.SYSTEM) + len(meta_prompts.JUDGE_SYSTEM) + len(meta_prompts.DESIGN_EXAMPLES)
) // CHARS_PER_TOKEN + 1200  # + the findings the design and diagnosis quote
FIXED_OUTPUT = 900  # the deconstruction, the diagnosis, the change list and the verdict


@dataclass(frozen=True)
class ModelEstimate:
    label: str
    input_tokens: int
    output_tokens: int
    cost: Decimal | None  # None: the model has no known price
    stops_at: int | None = None  # the item (1-based, in order) a hard budget would stop at

    @property
    def within_budget(self) -> bool:
        return self.stops_at is None


@dataclass(frozen=True)
class Estimate:
    items: int  # items that would run (duplicates share a result)
    models: list[ModelEstimate]
    headroom: Decimal | None  # what the tightest hard budget lets the user spend now; None: no hard budget
    builtin_only: bool  # the batch runs on the built-in engine: it costs nothing

    @property
    def warning(self) -> str:
        """A hard budget that would stop the batch, said before it starts."""
        if self.builtin_only or self.headroom is None:
            return ""
        short = [model for model in self.models if not model.within_budget]
        if not short:
            return ""
        cheapest = min(short, key=lambda model: model.cost or Decimal(0))
        return (
            f"A hard budget has ${self.headroom:.2f} left. With {cheapest.label} this batch is estimated at "
            f"${cheapest.cost:.2f}: it would reach the budget around item {cheapest.stops_at:,} of "
            f"{self.items:,}, and the items after it would run on the built-in engine (free, rule-based). "
            "Raise the budget, choose a cheaper model, or run fewer prompts."
        )


def item_usage(text: str) -> TokenUsage:
    tokens = len(text) // CHARS_PER_TOKEN + 1
    rewrite = int(tokens * REWRITE_GROWTH)
    return TokenUsage(
        input_tokens=FIXED_INPUT + CALLS_PER_ITEM * tokens + rewrite, output_tokens=FIXED_OUTPUT + rewrite
    )


def estimate(*, texts: list[str], model: str, user_id: int | None) -> Estimate:
    """The cost of optimizing ``texts`` (those that would run: no duplicates) with ``model`` (a run
    setting: "auto", "builtin" or a ModelChoice id) for each candidate model: every usable one for
    Auto, else the one chosen."""
    models = list(ModelChoice.objects.usable())
    if model != "auto":
        models = [choice for choice in models if str(choice.pk) == model]
    if model == "builtin" or not models:
        return Estimate(items=len(texts), models=[], headroom=None, builtin_only=True)
    usages = [item_usage(text) for text in texts]
    overrides = price_overrides(model_ids=[choice.pk for choice in models])
    room = budgets.headroom(user_id)
    found = []
    for choice in models:
        prices = overrides.get(choice.pk) or catalog_prices(choice.provider.price_catalog, choice.model_id)
        label = f"{choice.provider.name} / {choice.model_id}"
        total_in = sum(usage.input_tokens for usage in usages)
        total_out = sum(usage.output_tokens for usage in usages)
        if prices is None:
            found.append(ModelEstimate(label, total_in, total_out, None))
            continue
        total, stops_at = Decimal(0), None
        for position, usage in enumerate(usages, start=1):
            total += call_cost(catalog="", model_id=choice.model_id, own=prices, usage=usage) or Decimal(0)
            if stops_at is None and room is not None and total > room:
                stops_at = position
        found.append(ModelEstimate(label, total_in, total_out, total, stops_at))
    return Estimate(items=len(texts), models=found, headroom=room, builtin_only=False)
