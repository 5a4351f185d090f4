"""A call through the gateway against a real HTTP server on loopback: shapes, usage, cost, cache."""

import json
import logging
from decimal import Decimal

import pytest
from django.urls import reverse
from genai_prices import Usage, calc_price

from costs.models import UsageRecord
from optimizer.llm import gateway
from optimizer.llm.adapters import anthropic_parse, openai_parse
from tests.optimizer.llm.conftest import BUILTIN_ANSWER, SECRET, add_model, builtin, make_request
from tests.support import PROJECT_ROOT

pytestmark = pytest.mark.django_db
OPENAPI = PROJECT_ROOT.parent / "shared" / "data" / "openai-openapi.yaml"


def test_a_call_answers_with_schema_valid_data_and_records_usage_and_cost(openai_model, fake):
    result = gateway.call(make_request(), builtin=builtin, model=openai_model, user_id=None)

    assert result.provider == "OpenAI test" and result.model == "gpt-4o-mini"
    assert set(result.data) == {"goal", "score", "issues"}
    assert result.skipped == [] and not result.cached and not result.builtin
    record = UsageRecord.objects.get()
    reported = json.loads(json.dumps(fake.requests[0]["body"]))  # what the server saw
    assert record.status == "ok" and record.operation == "diagnose"
    assert record.input_tokens > 0 and record.output_tokens > 0 and not record.tokens_estimated
    expected = calc_price(
        Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens),
        "gpt-4o-mini",
        provider_id="openai",
    ).total_price
    assert record.cost == Decimal(expected) == result.cost
    assert reported["model"] == "gpt-4o-mini"


@pytest.fixture(scope="module")
def openapi_validator():
    """Validators for the schemas of OpenAI's published OpenAPI description (../shared/data)."""
    yaml = pytest.importorskip("yaml")
    if not OPENAPI.exists():
        pytest.skip("../shared/data is absent")
    from jsonschema import Draft202012Validator
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    document = yaml.load(OPENAPI.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    registry = Registry().with_resource("urn:openai", DRAFT202012.create_resource(document))

    def validator(name: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"urn:openai#/components/schemas/{name}"}, registry=registry)

    return validator


def test_the_openai_request_and_response_match_the_published_api(openai_model, fake, openapi_validator):
    gateway.call(make_request(), builtin=builtin, model=openai_model)

    sent = fake.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["has-credentials"] == "true"
    request_errors = list(openapi_validator("CreateChatCompletionRequest").iter_errors(sent["body"]))
    assert request_errors == []
    answer = fake.answer(sent["path"], sent["body"], "ok")
    response_errors = list(
        openapi_validator("CreateChatCompletionResponse").iter_errors(json.loads(answer[2]))
    )
    assert response_errors == []


def test_the_anthropic_request_uses_tool_use_for_structured_output(anthropic_model, fake):
    result = gateway.call(make_request(), builtin=builtin, model=anthropic_model)

    sent = fake.requests[0]
    body = sent["body"]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["has-credentials"] == "true"
    assert body["system"] == "You improve prompts."
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["tools"][0]["input_schema"]["required"] == ["goal", "score", "issues"]
    assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"]}
    assert isinstance(body["max_tokens"], int)
    assert result.provider == "Anthropic test" and set(result.data) == {"goal", "score", "issues"}


def test_usage_is_normalized_so_input_tokens_include_cached_ones():
    openai = openai_parse(
        {
            "choices": [{"message": {"content": "{}"}}],
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 600},
            },
        }
    ).usage
    anthropic = anthropic_parse(
        {
            "content": [{"type": "tool_use", "name": "respond", "input": {}}],
            "usage": {
                "input_tokens": 400,
                "output_tokens": 50,
                "cache_read_input_tokens": 500,
                "cache_creation_input_tokens": 100,
            },
        }
    ).usage

    assert (openai.input_tokens, openai.cached_tokens) == (1000, 600)
    assert (anthropic.input_tokens, anthropic.cached_tokens, anthropic.cache_write_tokens) == (1000, 500, 100)


def test_cached_tokens_are_priced_at_their_own_rate(openai_model):
    from optimizer.llm.pricing import TokenUsage, call_cost

    usage = TokenUsage(input_tokens=1_000_000, output_tokens=0, cached_tokens=500_000)
    cost = call_cost(catalog="openai", model_id="gpt-4o-mini", own=None, usage=usage)

    assert cost == Decimal("0.1125")  # 500k at $0.15/M + 500k cached at $0.075/M


def test_an_identical_request_within_the_hour_is_answered_from_the_cache(openai_model, fake):
    first = gateway.call(make_request(), builtin=builtin, model=openai_model)
    second = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert len(fake.requests) == 1
    assert second.cached and second.cost == 0 and second.data == first.data
    hit = UsageRecord.objects.get(status="cache_hit")
    assert hit.cost == 0 and hit.saved_cost == first.cost


def test_errors_are_never_cached(openai_model, fake):
    fake.enqueue({"status": 400})
    assert gateway.call(make_request(), builtin=builtin, model=openai_model).builtin

    again = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert not again.builtin and not again.cached
    assert len(fake.requests) == 2


def test_invalid_json_gets_one_repair_attempt(openai_model, fake):
    fake.enqueue("malformed")

    result = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert not result.builtin and set(result.data) == {"goal", "score", "issues"}
    repair = fake.requests[1]["body"]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "this is not JSON {"}
    assert "not valid" in repair[-1]["content"]
    assert list(UsageRecord.objects.order_by("id").values_list("status", "operation")) == [
        ("invalid", "diagnose"),
        ("ok", "diagnose:repair"),
    ]


def test_an_answer_invalid_twice_fails_over_but_does_not_count_against_the_breaker(openai_model, fake):
    from optimizer.llm.breaker import CircuitBreaker

    fake.enqueue("wrong_schema", "wrong_schema")

    result = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert result.builtin and result.data == BUILTIN_ANSWER
    assert [str(skip) for skip in result.skipped] == [
        "OpenAI test/gpt-4o-mini: invalid answer (InvalidAnswer, 2 attempts)"
    ]
    assert CircuitBreaker(openai_model.breaker_key).status()["failures_last_window"] == 0


def test_a_model_with_no_known_price_is_recorded_unpriced_not_free(db, fake):
    local = add_model(fake.url, name="Local server", model_id="llama3.1:8b", price_catalog="", api_key_env="")

    result = gateway.call(make_request(), builtin=builtin, model=local)

    assert result.cost is None
    record = UsageRecord.objects.get()
    assert record.cost is None and record.unpriced
    assert fake.requests[0]["headers"]["has-credentials"] == "false"


def test_a_missing_api_key_skips_the_model_without_calling_it(db, fake, monkeypatch):
    monkeypatch.delenv("PO_TEST_API_KEY")
    choice = add_model(fake.url, name="No key")

    result = gateway.call(make_request(), builtin=builtin, model=choice)

    assert result.builtin and fake.requests == []
    assert result.skipped[0].reason == "no API key"


def test_the_api_key_never_appears_in_logs_errors_records_or_the_admin(
    openai_model, fake, caplog, staff_client
):
    caplog.set_level(logging.DEBUG)
    fake.enqueue({"status": 401}, {"status": 500}, {"status": 500}, {"status": 500})

    first = gateway.call(make_request("one"), builtin=builtin, model=openai_model)
    second = gateway.call(make_request("two"), builtin=builtin, model=openai_model)

    pages = [
        staff_client.get(reverse("admin:optimizer_provider_changelist")),
        staff_client.get(reverse("admin:optimizer_provider_change", args=[openai_model.provider_id])),
        staff_client.get(reverse("admin:costs_usagerecord_changelist")),
    ]
    seen = [caplog.text, repr(first), repr(second), *(p.content.decode() for p in pages)]
    seen += [repr(list(UsageRecord.objects.values()))]
    assert all(page.status_code == 200 for page in pages)
    assert all(SECRET not in text and SECRET[-12:] not in text for text in seen)
    assert "PO_TEST_API_KEY" in pages[1].content.decode()  # the variable's name is shown, not its value


def test_every_call_writes_exactly_one_usage_record_per_exchange(openai_model, fake):
    fake.enqueue({"status": 400})
    gateway.call(make_request("a"), builtin=builtin, model=openai_model)  # error, then built-in
    gateway.call(make_request("b"), builtin=builtin, model=openai_model)  # ok
    gateway.call(make_request("b"), builtin=builtin, model=openai_model)  # cache hit

    statuses = list(UsageRecord.objects.order_by("id").values_list("provider", "status", "http_status"))
    assert statuses == [
        ("OpenAI test", "error", 400),
        ("Built-in engine", "ok", None),
        ("OpenAI test", "ok", None),
        ("OpenAI test", "cache_hit", None),
    ]


def test_cache_hits_and_misses_are_counted_for_monitoring(openai_model, fake):
    from django.utils import timezone

    from costs.selectors import api_cache_stats

    started = timezone.now()
    first = gateway.call(make_request("a"), builtin=builtin, model=openai_model)
    gateway.call(make_request("a"), builtin=builtin, model=openai_model)
    gateway.call(make_request("a"), builtin=builtin, model=openai_model)
    gateway.call(make_request("b"), builtin=builtin, model=openai_model)

    stats = api_cache_stats(since=started)

    assert (stats["hits"], stats["misses"]) == (2, 2)
    assert stats["saved"] == 2 * first.cost


def test_a_provider_that_reports_no_usage_gets_estimated_tokens_flagged(openai_model, fake):
    fake.enqueue("no_usage")

    result = gateway.call(make_request(), builtin=builtin, model=openai_model)

    record = UsageRecord.objects.get()
    assert record.tokens_estimated and record.input_tokens > 0 and record.output_tokens > 0
    assert result.cost is not None and result.cost > 0


def test_a_provider_needs_a_base_url_unless_it_is_the_built_in_engine(db):
    from django.core.exceptions import ValidationError

    from optimizer.models import Provider

    with pytest.raises(ValidationError, match="base URL"):
        Provider(name="Broken", kind=Provider.Kind.OPENAI, base_url="").full_clean()
    Provider(name="Fine", kind=Provider.Kind.BUILTIN, base_url="").full_clean()


def test_the_usage_admin_totals_never_show_unpriced_calls_as_free(db, fake, staff_client):
    local = add_model(fake.url, name="Local server", model_id="llama3.1:8b", price_catalog="", api_key_env="")
    gateway.call(make_request(), builtin=builtin, model=local)

    page = staff_client.get(reverse("admin:costs_usagerecord_changelist")).content.decode()

    assert "plus 1 unpriced call" in page and reverse("admin:costs_modelprice_add") in page
    assert "cost $0\n" in page  # no priced call: nothing spent, and the unpriced one beside it
    assert "unpriced" in page.split("<tbody>", 1)[1]  # the row itself says so too
