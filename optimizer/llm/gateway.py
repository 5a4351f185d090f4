"""The one way the project calls a language model.

For each candidate model, in order (the chosen one, then the enabled models by fallback order):
API cache → budget gate → circuit breaker → per-provider concurrency limit → the request, with
retries (stamina: jittered exponential backoff, Retry-After honoured, 3 attempts, none after a hung
request; LLM_FIRST_BYTE_TIMEOUT_S per request, LLM_CALL_DEADLINE_S for the whole call) →
schema validation with one repair attempt → a usage record, whatever happened. When no model
answers, the caller's built-in implementation does: it needs no network and cannot be refused.

An answer that is not valid JSON for the schema after the repair fails that model over, but counts
as a *success* for the breaker: the HTTP exchange worked, so the provider is up, and a model that
struggles with one schema must not be cut off for every other operation.
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from decimal import Decimal

import httpx
import stamina
from django.conf import settings
from django.db import transaction

from costs import snapshot as costs_snapshot
from costs.budgets import BudgetGate
from costs.models import BUILTIN_PROVIDER, UsageRecord
from costs.services import usage_record_create
from optimizer.llm import adapters, api_cache, routing
from optimizer.llm.breaker import CircuitBreaker
from optimizer.llm.errors import MAX_RETRY_AFTER_S, InvalidAnswer, ProviderError
from optimizer.llm.pricing import PricePerMillion, TokenUsage, call_cost
from optimizer.llm.structured import repair_request, validate
from optimizer.llm.transport import http_client
from optimizer.llm.types import GatewayResult, LLMRequest, Skip
from optimizer.models import ModelChoice, Provider, StageAnswer

logger = logging.getLogger(__name__)

BUILTIN_MODEL = "builtin"
CHARS_PER_TOKEN = routing.CHARS_PER_TOKEN  # also when a provider reports no usage (flagged estimated)

_semaphores: dict[int, tuple[int, threading.BoundedSemaphore]] = {}
_semaphores_lock = threading.Lock()


def retry_settings() -> dict:
    """Attempts and backoff per model; ``deadline_s`` bounds the whole call, failover included."""
    defaults = {"attempts": 3, "wait_initial": 0.5, "wait_max": 8.0, "wait_jitter": 0.5}
    return defaults | {"deadline_s": float(settings.LLM_CALL_DEADLINE_S)} | getattr(settings, "LLM_RETRY", {})


def candidate_models(preferred: ModelChoice | None = None) -> Iterator[ModelChoice]:
    """The chosen model first, then every other enabled model in fallback order (the built-in
    engine comes last, from the caller). The others are only looked up if the first one fails."""
    if preferred is not None:
        yield preferred
    yield from ModelChoice.objects.usable().exclude(pk=getattr(preferred, "pk", None))


def call(
    request: LLMRequest,
    *,
    builtin: Callable[[], dict],
    model: ModelChoice | None = None,
    user_id: int | None = None,
    run_id: int | None = None,
    budget_gate: BudgetGate | None = None,
    needs: routing.Needs | None = None,
    resumed: bool = False,
    progress: Callable[[str], None] | None = None,
) -> GatewayResult:
    """Answer ``request`` with the first model that can; ``builtin()`` when none can.

    ``resumed``: the run ``run_id`` was started again after its worker died, so an answer it has
    paid for already is taken from its stage answers when the API cache does not have it.
    ``progress``: told, in a short sentence, of each retry and each failover as it happens.

    With no ``model`` ("Auto"), the cheapest model that suits ``needs`` is tried first (see
    ``routing``), and the result says why. One deadline covers the whole call, failover included:
    a model not reached in time is skipped, and the built-in engine answers.
    """
    gate = budget_gate or BudgetGate()
    deadline = time.monotonic() + retry_settings()["deadline_s"]
    skipped: list[Skip] = []
    selection = None
    if model is not None and model.provider.kind == Provider.Kind.BUILTIN:
        candidates = iter(())
    elif model is None:
        needs = needs or routing.Needs(request.operation, sum(len(m.content) for m in request.messages))
        selection = routing.select(request, needs, user_id=user_id)
        candidates = iter(selection.order)
    else:
        candidates = candidate_models(model)
    say = progress or (lambda _text: None)
    for choice in candidates:
        if time.monotonic() >= deadline:
            skipped.append(Skip(choice.provider.name, choice.model_id, "deadline reached"))
            continue
        if skipped and skipped[-1].reason != "deadline reached":
            say(f"failing over to {_label(choice)} ({skipped[-1]})")
        outcome = _call_model(
            choice, request, gate=gate, user_id=user_id, run_id=run_id, deadline=deadline, resumed=resumed,
            say=say,
        )  # fmt: skip
        if isinstance(outcome, Skip):
            skipped.append(outcome)
            continue
        outcome.skipped = skipped
        outcome.selection = selection and selection.as_record()
        return outcome
    if skipped:
        say(f"no model answered ({skipped[-1]}); the built-in engine answers")
    result = _call_builtin(request, builtin, user_id=user_id, run_id=run_id, skipped=skipped)
    result.selection = selection and selection.as_record()
    return result


def _call_builtin(request, builtin, *, user_id, run_id, skipped) -> GatewayResult:
    started = time.perf_counter()
    data = builtin()
    usage_record_create(
        user_id=user_id,
        run_id=run_id,
        provider=BUILTIN_PROVIDER,
        model=BUILTIN_MODEL,
        operation=request.operation,
        cost=Decimal(0),
        latency_ms=_ms_since(started),
        status=UsageRecord.Status.OK,
    )
    return GatewayResult(
        data=data,
        provider=BUILTIN_PROVIDER,
        model=BUILTIN_MODEL,
        cost=Decimal(0),
        builtin=True,
        skipped=skipped,
    )


def _label(choice: ModelChoice) -> str:
    return f"{choice.provider.name} / {choice.model_id}"


def _call_model(
    choice: ModelChoice,
    request: LLMRequest,
    *,
    gate,
    user_id,
    run_id,
    deadline: float,
    resumed: bool = False,
    say: Callable[[str], None] = lambda _text: None,
) -> GatewayResult | Skip:
    provider = choice.provider
    key = api_cache.cache_key(provider=provider.name, model=choice.model_id, request=request)
    record = _Recorder(choice, request, user_id=user_id, run_id=run_id, key=key)
    breaker = CircuitBreaker(choice.breaker_key)
    # One round trip: the answer, the breaker's state and the version of prices and budgets.
    found = api_cache.read_many([key, *breaker.state_keys(), costs_snapshot.VERSION_KEY])
    costs = costs_snapshot.current(found)
    record.snapshot = costs
    entry = found.get(key) if found is not None else None
    if entry is None and resumed and run_id is not None and (entry := _paid_before(run_id, key)):
        api_cache.store_answer(key, entry)
    if entry is not None:
        saved = Decimal(entry["cost"]) if entry.get("cost") is not None else Decimal(0)
        record.write(status=UsageRecord.Status.CACHE_HIT, cost=Decimal(0), saved_cost=saved, latency_ms=0)
        return GatewayResult(
            data=entry["data"], provider=provider.name, model=choice.model_id, cost=Decimal(0), cached=True
        )

    try:
        secret = adapters.api_key(provider.api_key_env)
    except ProviderError:
        return Skip(provider.name, choice.model_id, "no API key", error_class="MissingAPIKey")

    own = costs.price(choice.pk)
    estimate = routing.estimate_cost(choice, request, own)
    decision = gate.reserve(user_id=user_id, estimated_cost=estimate, snapshot=costs)
    if not decision.allowed:
        return Skip(provider.name, choice.model_id, f"budget refused: {decision.reason}".rstrip(": "))

    # Waiting for a free slot is this process's own congestion, not the provider's failure: it is
    # settled before the breaker is asked, so it never counts against the provider.
    with _provider_slot(provider, deadline) as acquired:
        if not acquired:
            gate.release(decision)
            return Skip(provider.name, choice.model_id, "provider busy")
        permit = breaker.allow(found)
        if not permit.allowed:
            gate.release(decision)
            return Skip(provider.name, choice.model_id, f"breaker {permit.state.value.replace('_', '-')}")

        exchanges = _Exchanges(_label(choice), record, breaker, permit, say)
        try:
            answer, cost = _ask_with_repair(choice, request, secret, record, deadline, own, exchanges)
        except (ProviderError, httpx.HTTPError, InvalidAnswer, _BreakerOpened) as exc:
            gate.settle(decision)  # an earlier attempt may have cost something
            cause = exc.__cause__ if isinstance(exc, _BreakerOpened) else exc
            reason = "invalid answer" if isinstance(cause, InvalidAnswer) else "error"
            return Skip(
                provider.name,
                choice.model_id,
                reason + (", its circuit breaker opened" if isinstance(exc, _BreakerOpened) else ""),
                error_class=type(cause).__name__,
                status=getattr(cause, "status", None),
                attempts=exchanges.sent,
            )
        except _InvalidAfterRepair:
            breaker.record_success(permit)
            gate.settle(decision)
            return Skip(
                provider.name,
                choice.model_id,
                "invalid answer",
                error_class="InvalidAnswer",
                attempts=exchanges.sent,
            )

    # Stored right after its usage record, before anything that may wait (the breaker's shared
    # counts, the budget release). A run's answer is in its stage answers already (see _Recorder).
    api_cache.store_answer(key, _entry(answer, cost))
    breaker.record_success(permit)
    gate.settle(decision)
    return GatewayResult(
        data=answer.data, provider=provider.name, model=choice.model_id, cost=cost, retried=exchanges.failures
    )


class _BreakerOpened(Exception):
    """A failed exchange opened the model's breaker: no more retries (the cause is the failure)."""


class _Exchanges:
    """The requests of one model's part in a call, retries included. Each that fails gets a usage
    record of its own (status, error class, how long it took) and counts as a failure for the
    breaker, as it happens: a call that succeeded after two 503s shows those two, and the breaker
    has seen them."""

    def __init__(self, label: str, record: "_Recorder", breaker: CircuitBreaker, permit, say):
        self.label, self.record, self.breaker, self.permit, self.say = label, record, breaker, permit, say
        self.sent = 0
        self.failures: list[str] = []

    def starting(self) -> None:
        if self.failures:
            self.say(f"retrying {self.label} ({self.failures[-1]})")
        self.sent += 1

    def failed(self, exc: Exception, started: float) -> bool:
        """Record one failed exchange; True when it opened the breaker (then no retry follows)."""
        status = getattr(exc, "status", None)
        self.failures.append(f"HTTP {status}" if status else type(exc).__name__)
        self.record.write(
            status=UsageRecord.Status.ERROR,
            cost=Decimal(0),
            latency_ms=_ms_since(started),
            error_class=type(exc).__name__,
            http_status=status,
        )
        opened = self.breaker.record_failure(self.permit, hung=isinstance(exc, httpx.TimeoutException))
        # A trial is settled by its first failure; a later success must clear the count it raised.
        self.permit = replace(
            self.permit, trial=False, consecutive_failures=self.permit.consecutive_failures + 1
        )
        return opened


def _entry(answer: adapters.Answer, cost: Decimal | None) -> dict:
    """What the API cache and a run's stage answers keep of an answer."""
    return {"data": answer.data, "cost": None if cost is None else str(cost)}


def _paid_before(run_id: int, key: str) -> dict | None:
    kept = StageAnswer.objects.filter(run_id=run_id, key=key).values_list("entry", flat=True).first()
    return json.loads(kept) if kept is not None else None


class _InvalidAfterRepair(Exception):
    """Invalid answer after one repair attempt (both attempts' records hold what they cost)."""


def _ask_with_repair(
    choice, request, secret, record, deadline, own: PricePerMillion | None, exchanges: _Exchanges
) -> tuple[adapters.Answer, Decimal | None]:
    """One request and, if its answer does not fit the schema, one repair request. Each HTTP
    exchange that returns is recorded with its own tokens and cost."""
    spent: Decimal | None = Decimal(0)
    current = request
    for attempt in ("first", "repair"):
        started = time.perf_counter()
        payload = _send_with_retries(choice, current, secret, deadline, exchanges)
        try:
            answer = _parse(choice.provider.kind, payload)
            validate(answer.data, request.schema)
        except InvalidAnswer as problem:
            text = _answer_text(choice.provider.kind, payload)
            usage = _usage_or_estimate(None, current, text)
            cost = _cost(choice, usage, own)
            spent = None if spent is None or cost is None else spent + cost
            record.write(
                status=UsageRecord.Status.INVALID,
                usage=usage,
                cost=cost,
                latency_ms=_ms_since(started),
                error_class="InvalidAnswer",
                operation=current.operation,
            )
            if attempt == "repair":
                raise _InvalidAfterRepair from None
            current = repair_request(request, text, str(problem))
            continue
        usage = _usage_or_estimate(answer.usage, current, answer.text)
        cost = _cost(choice, usage, own)
        total = None if spent is None or cost is None else spent + cost
        record.write(
            status=UsageRecord.Status.OK,
            usage=usage,
            cost=cost,
            latency_ms=_ms_since(started),
            operation=current.operation,
            answer=_entry(answer, total),
        )
        return answer, total
    raise AssertionError("unreachable")


def _send_with_retries(
    choice: ModelChoice, request: LLMRequest, secret: str | None, deadline: float, exchanges: _Exchanges
) -> dict:
    provider = choice.provider
    body = (adapters.anthropic_body if provider.kind == Provider.Kind.ANTHROPIC else adapters.openai_body)(
        request, choice.model_id
    )
    policy = retry_settings()
    for attempt in stamina.retry_context(
        on=_backoff,
        attempts=policy["attempts"],
        timeout=max(deadline - time.monotonic(), 0.1),
        wait_initial=policy["wait_initial"],
        wait_max=policy["wait_max"],
        wait_jitter=policy["wait_jitter"],
    ):
        with attempt:
            remaining = max(deadline - time.monotonic(), 0.1)
            first_byte = min(provider.read_timeout_s, settings.LLM_FIRST_BYTE_TIMEOUT_S, remaining)
            timeout = httpx.Timeout(first_byte, connect=min(provider.connect_timeout_s, remaining))
            exchanges.starting()
            started = time.perf_counter()
            try:
                return adapters.send(
                    http_client(),
                    kind=provider.kind,
                    base_url=provider.base_url,
                    key=secret,
                    body=body,
                    timeout=timeout,
                    deadline=deadline,
                )
            except (ProviderError, httpx.HTTPError, InvalidAnswer) as exc:
                if exchanges.failed(exc, started):
                    raise _BreakerOpened from exc
                raise
    raise AssertionError("unreachable")


def _backoff(exc: Exception) -> bool | float:
    """Retry on connection errors and retryable statuses; wait as the provider asks. A provider that
    took the request and sent nothing back in time is hung, not flaky: asking again would hold the
    worker as long again, so the call fails over at once."""
    if isinstance(exc, ProviderError):
        if not exc.retryable:
            return False
        if exc.retry_after is not None and 0 <= exc.retry_after <= MAX_RETRY_AFTER_S:
            return exc.retry_after
        return True
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.ReadTimeout)


def _parse(kind: str, payload: dict) -> adapters.Answer:
    return (adapters.anthropic_parse if kind == Provider.Kind.ANTHROPIC else adapters.openai_parse)(payload)


def _answer_text(kind: str, payload: dict) -> str:
    """The raw answer, for the repair request and token estimates, whatever its shape."""
    try:
        if kind == Provider.Kind.ANTHROPIC:
            return "".join(
                b.get("text") or json.dumps(b.get("input", ""))
                for b in payload["content"]
                if isinstance(b, dict)
            )
        return str(payload["choices"][0]["message"].get("content") or "")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def _usage_or_estimate(usage: TokenUsage | None, request: LLMRequest, answer_text: str) -> TokenUsage:
    if usage is not None:
        return usage
    prompt_chars = sum(len(m.content) for m in request.messages)
    return TokenUsage(
        input_tokens=prompt_chars // CHARS_PER_TOKEN + 1,
        output_tokens=len(answer_text) // CHARS_PER_TOKEN + 1,
        estimated=True,
    )


def _cost(choice: ModelChoice, usage: TokenUsage, own: PricePerMillion | None) -> Decimal | None:
    return call_cost(catalog=choice.provider.price_catalog, model_id=choice.model_id, own=own, usage=usage)


@contextmanager
def _provider_slot(provider: Provider, deadline: float) -> Iterator[bool]:
    """At most ``max_concurrency`` requests to one provider at a time from this process; yields
    whether a slot came free before the deadline."""
    with _semaphores_lock:
        size, semaphore = _semaphores.get(provider.pk, (None, None))
        if size != provider.max_concurrency:
            semaphore = threading.BoundedSemaphore(provider.max_concurrency)
            _semaphores[provider.pk] = (provider.max_concurrency, semaphore)
    acquired = semaphore.acquire(timeout=max(deadline - time.monotonic(), 0))
    try:
        yield acquired
    finally:
        if acquired:
            semaphore.release()


class _Recorder:
    """Writes the usage records of one model's part in a call."""

    def __init__(self, choice: ModelChoice, request: LLMRequest, *, user_id, run_id, key: str):
        self.choice, self.request, self.user_id, self.run_id = choice, request, user_id, run_id
        self.key = key
        self.snapshot: costs_snapshot.Snapshot | None = None  # the prices and budgets of this call

    def write(
        self,
        *,
        status: str,
        cost: Decimal | None,
        latency_ms: int,
        usage: TokenUsage | None = None,
        saved_cost: Decimal = Decimal(0),
        error_class: str = "",
        http_status: int | None = None,
        operation: str | None = None,
        answer: dict | None = None,
    ) -> None:
        """``answer``: the validated answer of a run's call, kept in its stage answers in the same
        transaction as the usage record: a worker killed at any moment leaves the call either
        unrecorded or recorded with its answer kept."""
        usage = usage or TokenUsage(0, 0)
        keep = answer is not None and self.run_id is not None
        with transaction.atomic() if keep else nullcontext():
            usage_record_create(
                user_id=self.user_id,
                run_id=self.run_id,
                provider=self.choice.provider.name,
                model=self.choice.model_id,
                operation=operation or self.request.operation,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cached_tokens,
                tokens_estimated=usage.estimated,
                cost=cost,
                saved_cost=saved_cost,
                latency_ms=latency_ms,
                status=status,
                error_class=error_class,
                http_status=http_status,
                snapshot=self.snapshot,
            )
            if keep:
                StageAnswer.objects.create(
                    run_id=self.run_id, key=self.key, entry=json.dumps(answer, ensure_ascii=False)
                )


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
