"""The Monitoring page: staff only, its HTMX partial, its JSON export, its two actions, and query
counts that stay the same whatever the number of records."""

import json
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from costs.models import UsageRecord
from optimizer.caching import RESULT_FIELDS, analysis_key, analysis_set, cached, result_key, result_set
from optimizer.llm import api_cache
from optimizer.llm.breaker import CircuitBreaker
from optimizer.models import OptimizationRun
from tests.optimizer.monitoring.factories import ModelChoiceFactory, RunFactory, UsageRecordFactory

pytestmark = pytest.mark.django_db
URL = reverse("optimizer:monitoring")


@pytest.fixture(autouse=True)
def _clean_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


def test_the_page_and_its_parts_are_for_staff_only(owner_client):
    choice = ModelChoiceFactory()
    for url in (
        URL,
        reverse("optimizer:monitoring-export"),
        reverse("optimizer:monitoring-cache-clear", args=["api"]),
    ):
        assert owner_client.get(url).status_code == 404
    assert (
        owner_client.post(reverse("optimizer:monitoring-breaker-reset", args=[choice.pk])).status_code == 404
    )
    assert owner_client.post(reverse("optimizer:monitoring-cache-clear", args=["api"])).status_code == 404


def test_the_page_shows_every_tile(staff_client):
    ModelChoiceFactory(model_id="gpt-5-mini")
    UsageRecordFactory(
        model="gpt-5-mini", latency_ms=1234, status="error", error_class="ProviderError", cost=0
    )
    RunFactory(duration_ms=4321, degraded_reason="The model failed; the built-in engine answered.")
    page = staff_client.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    for tile in ("tile-optimizations", "tile-model-calls", "tile-caches", "tile-queue", "tile-machine"):
        assert f'id="{tile}"' in html
    assert "4,321 ms" in html and "1,234 ms" in html and "ProviderError: 1 (100.0%)" in html
    assert "the built-in engine answered" in html and "js/monitoring.js" in html
    assert "<script>" not in html  # no inline script: the CSP forbids it
    assert "100.0% of requests failed" in html  # the banner: over the error-rate threshold
    assert 'data-refresh-url="/monitoring/"' in html


def test_htmx_gets_only_the_tiles(staff_client):
    partial = staff_client.get(URL, headers={"HX-Request": "true"})
    html = partial.content.decode()
    assert partial.status_code == 200 and html.lstrip().startswith('<div id="monitoring-tiles"')
    assert "<html" not in html and "Pause refresh" not in html


def test_export_is_json_of_what_the_page_shows(staff_client):
    UsageRecordFactory(cost=Decimal("0.0125"), latency_ms=321)
    answer = staff_client.get(reverse("optimizer:monitoring-export"))
    assert answer.status_code == 200 and "attachment" in answer["Content-Disposition"]
    data = json.loads(answer.content)
    assert set(data) >= {"optimizations", "model_calls", "caches", "queue", "machine", "alerts", "thresholds"}
    assert (
        Decimal(data["model_calls"][0]["cost_last_hour"]) == Decimal("0.0125")
        and data["model_calls"][0]["p50_ms"] == 321
    )


def test_reset_closes_an_open_breaker(staff_client):
    choice = ModelChoiceFactory()
    breaker = CircuitBreaker(choice.breaker_key)
    for _ in range(breaker.policy.consecutive_failures):
        breaker.record_failure(breaker.allow())
    assert breaker.state().value == "open"
    answer = staff_client.post(reverse("optimizer:monitoring-breaker-reset", args=[choice.pk]), follow=True)
    assert breaker.state().value == "closed"
    assert "is closed again" in answer.content.decode()
    assert staff_client.post(reverse("optimizer:monitoring-breaker-reset", args=[999_999])).status_code == 404
    assert (
        staff_client.get(reverse("optimizer:monitoring-breaker-reset", args=[choice.pk])).status_code == 405
    )


def test_clearing_a_tier_asks_first_then_deletes_only_that_tier(staff_client):
    api_key = "llmcache:v1:" + "a" * 64
    api_cache.store_answer(api_key, {"data": {}, "cost": "0"})
    analysis = analysis_key("Explain tides.", "general", "llm", owner_id=1)
    analysis_set(analysis, {"x": 1})
    result = result_key("Explain tides.", {}, "v1", owner_id=1)
    result_set(result, dict.fromkeys(RESULT_FIELDS, ""))
    caches["default"].set("unrelated", "kept")
    url = reverse("optimizer:monitoring-cache-clear", args=["analysis"])

    confirm = staff_client.get(url)
    assert confirm.status_code == 200 and "Clear the analysis cache" in confirm.content.decode()
    assert cached(analysis) is not None  # asking changes nothing

    answer = staff_client.post(url, follow=True)
    assert "1 entries deleted" in answer.content.decode()
    assert cached(analysis) is None
    assert cached(result) is not None and caches["default"].get(api_key) is not None
    assert caches["default"].get("unrelated") == "kept"

    staff_client.post(reverse("optimizer:monitoring-cache-clear", args=["api"]))
    assert caches["default"].get(api_key) is None and cached(result) is not None
    assert staff_client.get(reverse("optimizer:monitoring-cache-clear", args=["nonsense"])).status_code == 404


def _seed(choice, run, *, runs: int, records: int) -> None:
    OptimizationRun.objects.bulk_create(
        OptimizationRun(
            owner=run.owner, prompt=run.prompt, status="done", duration_ms=n, degraded_reason=f"r{n % 3}"
        )
        for n in range(runs)
    )
    UsageRecord.objects.bulk_create(
        UsageRecord(
            provider=choice.provider.name, model=choice.model_id, operation="design", run=run,
            status="error" if n % 4 == 0 else "ok", error_class="ProviderError" if n % 4 == 0 else "",
            latency_ms=n, cost=Decimal("0.001"),
        )
        for n in range(records)
    )  # fmt: skip


def test_the_partial_makes_the_same_queries_whatever_the_data(staff_client):
    choice, run = ModelChoiceFactory(), RunFactory()
    staff_client.get(URL)  # warm what is read once per process
    _seed(choice, run, runs=5, records=20)
    with CaptureQueriesContext(connection) as small:
        assert staff_client.get(URL, headers={"HX-Request": "true"}).status_code == 200
    _seed(choice, run, runs=500, records=2000)
    with CaptureQueriesContext(connection) as large:
        assert staff_client.get(URL, headers={"HX-Request": "true"}).status_code == 200
    assert len(large) == len(small), [q["sql"][:120] for q in large.captured_queries]
