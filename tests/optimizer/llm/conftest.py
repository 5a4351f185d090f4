import pytest
from django.core.cache import caches

from optimizer.llm.fake_provider import FakeProvider
from optimizer.llm.types import LLMRequest, Message
from optimizer.models import ModelChoice, Provider

SECRET = "sk-test-0123456789abcdefSECRETKEYVALUE"
SCHEMA = {
    "type": "object",
    "properties": {
        "goal": {"type": "string"},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "issues": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["goal", "score", "issues"],
    "additionalProperties": False,
}
BUILTIN_ANSWER = {"goal": "from the built-in engine", "score": 1, "issues": []}


def builtin():
    return dict(BUILTIN_ANSWER)


def make_request(text: str = "Write a poem about the sea", operation: str = "diagnose") -> LLMRequest:
    return LLMRequest(
        operation=operation,
        messages=(Message("system", "You improve prompts."), Message("user", text)),
        schema=SCHEMA,
        schema_name="diagnosis",
    )


@pytest.fixture(scope="session")
def fake_server():
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_server):
    fake_server.reset()
    fake_server.latency = 0.0
    yield fake_server
    fake_server.reset()


@pytest.fixture
def gateway_settings(settings, monkeypatch):
    """Short waits so retry tests take milliseconds; a clean cache so no breaker or cached answer
    leaks between tests; the test key in the environment, as in production."""
    settings.LLM_RETRY = {"wait_initial": 0.01, "wait_max": 0.05, "wait_jitter": 0.0, "deadline_s": 10.0}
    settings.LLM_BREAKER = {"consecutive_failures": 3, "cooldown_s": 0.5, "min_calls": 10}
    monkeypatch.setenv("PO_TEST_API_KEY", SECRET)
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture(autouse=True)
def _gateway_settings(gateway_settings):
    """Every gateway test runs with them."""


def add_model(
    base_url: str, *, name: str, kind=Provider.Kind.OPENAI, model_id="gpt-4o-mini", order=10, **provider
):
    defaults = {"api_key_env": "PO_TEST_API_KEY", "price_catalog": "openai", "fallback_order": order}
    created = Provider.objects.create(name=name, kind=kind, base_url=base_url, **(defaults | provider))
    return ModelChoice.objects.create(provider=created, model_id=model_id)


@pytest.fixture
def openai_model(db, fake):
    return add_model(fake.url, name="OpenAI test")


@pytest.fixture
def anthropic_model(db, fake):
    return add_model(
        fake.url, name="Anthropic test", kind=Provider.Kind.ANTHROPIC, model_id="claude-haiku-4-5",
        price_catalog="anthropic",
    )  # fmt: skip
