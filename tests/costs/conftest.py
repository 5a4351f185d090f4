import pytest
from django.core.cache import caches

# The fake provider (a real HTTP server on loopback) and the gateway's test settings, from its own tests.
from tests.optimizer.llm.conftest import fake, fake_server, gateway_settings, openai_model  # noqa: F401


@pytest.fixture(autouse=True)
def _clean_cache(db):
    """The cost dashboard keeps past days' sums in the cache: each test starts with none (Redis
    outlives a test's database transaction)."""
    caches["default"].clear()
    yield
    caches["default"].clear()
