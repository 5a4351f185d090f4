"""Providers seeded from the environment, and the fake provider's command line."""

import io
import json
import signal
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest
from django.core.management import call_command
from genai_prices import Usage, calc_price

from costs.models import UsageRecord
from optimizer.llm import gateway
from optimizer.llm.fake_provider import example_for
from optimizer.llm.seed import providers_seed
from optimizer.models import ModelChoice, Provider
from tests.optimizer.llm.conftest import builtin, make_request
from tests.support import PROJECT_ROOT, clean_env, free_port, manage

pytestmark = pytest.mark.django_db


def test_a_key_in_the_environment_adds_its_provider_and_models_once():
    created = providers_seed({"ANTHROPIC_API_KEY": "sk-ant-x", "XAI_API_KEY": "xai-x"})
    again = providers_seed({"ANTHROPIC_API_KEY": "sk-ant-x", "XAI_API_KEY": "xai-x"})

    assert sorted(p.name for p in created) == ["Anthropic", "xAI"]
    assert again == []
    anthropic = Provider.objects.get(name="Anthropic")
    assert anthropic.kind == Provider.Kind.ANTHROPIC and anthropic.api_key_env == "ANTHROPIC_API_KEY"
    assert set(anthropic.models.values_list("tier", flat=True)) == {"fast", "balanced", "best"}
    assert "sk-ant-x" not in json.dumps(list(Provider.objects.values()), default=str)


def test_no_key_no_provider():
    assert providers_seed({}) == []
    assert not Provider.objects.exclude(kind=Provider.Kind.BUILTIN).exists()


def test_an_admins_changes_survive_a_restart():
    providers_seed({"OPENAI_API_KEY": "sk-x"})
    Provider.objects.filter(name="OpenAI").update(enabled=False, base_url="https://proxy.example/v1")

    providers_seed({"OPENAI_API_KEY": "sk-x"})

    provider = Provider.objects.get(name="OpenAI")
    assert not provider.enabled and provider.base_url == "https://proxy.example/v1"


def test_openai_base_url_points_the_compatible_provider_at_a_local_server():
    providers_seed(
        {"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "OPENAI_MODELS": "llama3.1:8b, qwen2.5:7b"}
    )

    provider = Provider.objects.get(name="OpenAI")
    assert provider.base_url == "http://127.0.0.1:11434/v1"
    assert provider.api_key_env == "" and provider.price_catalog == ""
    assert list(provider.models.values_list("model_id", flat=True)) == ["llama3.1:8b", "qwen2.5:7b"]


def test_seeded_models_have_list_prices_from_genai_prices():
    from optimizer.llm.pricing import catalog_prices

    providers_seed(
        {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "XAI_API_KEY": "k", "GEMINI_API_KEY": "k"}
    )

    unpriced = [
        str(choice)
        for choice in ModelChoice.objects.exclude(provider__kind=Provider.Kind.BUILTIN).select_related(
            "provider"
        )
        if catalog_prices(choice.provider.price_catalog, choice.model_id) is None
    ]
    assert unpriced == []


KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "XAI_API_KEY", "GEMINI_API_KEY", "OPENAI_MODELS")


def test_the_fake_provider_demo_is_priced_at_openais_list_prices_and_says_so(monkeypatch, fake):
    """The README's demo: ``fakellm``, then ``OPENAI_BASE_URL=<its address> make run``. Its model
    names are OpenAI's, so its calls cost what they would there, in real-looking dollars."""
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
    output = io.StringIO()

    call_command("seed_providers", stdout=output)

    said = output.getvalue()
    assert f"Added provider OpenAI (gpt-5-nano, gpt-5-mini, gpt-5) at {fake.url}." in said
    assert (
        "Priced at genai-prices' openai list prices, since their names match: gpt-5-nano, gpt-5-mini" in said
    )
    assert "Costs → Model prices" in said and "Unpriced" not in said
    nano = ModelChoice.objects.get(model_id="gpt-5-nano")
    assert nano.provider.price_catalog == "openai" and nano.provider.api_key_env == ""

    result = gateway.call(make_request(), builtin=builtin, model=nano)

    record = UsageRecord.objects.get()
    expected = calc_price(
        Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens),
        "gpt-5-nano",
        provider_id="openai",
    ).total_price
    assert not result.builtin and record.cost == Decimal(expected) > 0


def test_models_genai_prices_does_not_list_stay_unpriced_and_the_command_says_so(monkeypatch):
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("OPENAI_MODELS", "llama3.1:8b")
    output = io.StringIO()

    call_command("seed_providers", stdout=output)

    assert "Unpriced (genai-prices does not list them): llama3.1:8b." in output.getvalue()
    assert "Priced at" not in output.getvalue()
    assert Provider.objects.get(name="OpenAI").price_catalog == ""


def test_the_example_generator_satisfies_nested_schemas():
    from jsonschema import Draft202012Validator

    schema = {
        "type": "object",
        "$defs": {"issue": {"type": "object", "properties": {"severity": {"enum": ["low", "high"]}}}},
        "properties": {
            "issues": {"type": "array", "items": {"$ref": "#/$defs/issue"}, "minItems": 2},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "note": {"type": ["string", "null"], "minLength": 12},
        },
        "required": ["issues", "score", "note"],
    }

    assert list(Draft202012Validator(schema).iter_errors(example_for(schema))) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--fail-rate", "2"], "invalid _fraction value"), (["--latency", "-1"], "--latency must be 0 or more")],
)
def test_fakellm_refuses_bad_arguments(tmp_path, arguments, message):
    completed = manage("fakellm", *arguments, env=clean_env(DATA_DIR=str(tmp_path)))

    assert completed.returncode != 0
    assert message in completed.stderr


def test_fakellm_serves_until_stopped(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), "fakellm", "--port", str(port)],
        env=clean_env(DATA_DIR=str(tmp_path)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "Fake provider answering at" in server.stdout.readline()
        server.stdout.readline()
        assert f"Demo: OPENAI_BASE_URL=http://127.0.0.1:{port}/v1 make run" in server.stdout.readline()
        body = {
            "model": "m",
            "messages": [],
            "response_format": {"json_schema": {"schema": {"type": "object"}}},
        }
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "{}"
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0


def test_fakellm_rejects_rates_that_add_up_to_more_than_one(tmp_path):
    completed = manage(
        "fakellm", "--fail-rate", "0.6", "--hang-rate", "0.6", env=clean_env(DATA_DIR=str(tmp_path))
    )

    assert completed.returncode != 0
    assert "add up to more than 1" in completed.stderr


def test_the_fakes_failure_switches_drive_the_gateway():
    from optimizer.llm import gateway
    from optimizer.llm.fake_provider import FakeProvider
    from tests.optimizer.llm.conftest import add_model, builtin, make_request

    throttled = FakeProvider(fail_rate=1.0, fail_status=429, retry_after=0).start()
    garbled = FakeProvider(malformed_rate=1.0).start()
    try:
        first = add_model(throttled.url, name="Throttled", order=1)
        add_model(garbled.url, name="Garbled", order=2)

        result = gateway.call(make_request(), builtin=builtin, model=first)
    finally:
        throttled.stop()
        garbled.stop()

    assert len(throttled.requests) == 3  # 429 with Retry-After: 0 is retried, three attempts
    assert [(skip.provider, skip.reason, skip.status) for skip in result.skipped] == [
        (
            "Throttled",
            "error, its circuit breaker opened",
            429,
        ),  # three failures in a row (the tests' policy)
        ("Garbled", "invalid answer", None),
    ]
    assert result.builtin
