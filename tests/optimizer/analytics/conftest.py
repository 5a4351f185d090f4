import pytest
from django.core.cache import caches


@pytest.fixture(autouse=True)
def _clean_cache(db):
    """The page's figures are kept in the cache: each test starts with none (Redis outlives a test's
    database transaction, and a new test's runs may repeat an earlier one's ids and counts)."""
    caches["default"].clear()
    yield
    caches["default"].clear()
