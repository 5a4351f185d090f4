"""State changes of the costs app: usage records and the budget gate the gateway asks."""

from dataclasses import dataclass
from decimal import Decimal

from costs.models import UsageRecord


def usage_record_create(
    *,
    user_id: int | None,
    run_id: int | None,
    provider: str,
    model: str,
    operation: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    tokens_estimated: bool = False,
    cost: Decimal | None,
    saved_cost: Decimal = Decimal(0),
    latency_ms: int,
    status: str,
    error_class: str = "",
    http_status: int | None = None,
) -> UsageRecord:
    """Record one model call. Every call through the gateway writes exactly one of these."""
    return UsageRecord.objects.create(
        user_id=user_id,
        run_id=run_id,
        provider=provider,
        model=model,
        operation=operation[:60],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        tokens_estimated=tokens_estimated,
        cost=cost,
        saved_cost=saved_cost,
        latency_ms=latency_ms,
        status=status,
        error_class=error_class[:80],
        http_status=http_status,
    )


@dataclass(frozen=True)
class BudgetDecision:
    allowed: bool
    reason: str = ""
    reservation_id: str | None = None


class BudgetGate:
    """Asked by the gateway before each paid call, with the call's estimated cost.

    A refusal is a reason to skip that model, never an exception. Budgets and their limits arrive
    with the costs work; until then every call is allowed and nothing is reserved.
    """

    def reserve(self, *, user_id: int | None, estimated_cost: Decimal | None) -> BudgetDecision:
        return BudgetDecision(allowed=True)

    def settle(self, decision: BudgetDecision, *, actual_cost: Decimal | None) -> None:
        """The call returned: turn the reservation into the real cost."""

    def release(self, decision: BudgetDecision) -> None:
        """The call failed: give the reserved amount back."""
