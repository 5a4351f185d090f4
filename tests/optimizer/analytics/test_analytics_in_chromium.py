"""The Analytics page in Chromium: every chart is drawn from its JSON view by the Costs page's script,
with no violation of the content security policy."""

import pytest

from optimizer.models import OptimizationRun
from tests.browser.test_pages_in_chromium import (  # noqa: F401 - fixtures, with its Chromium skip
    _clean_cache,
    assert_no_csp_violation,
    browser,
    signed_in,
    wait,
)
from tests.optimizer.analytics.factories import RunFactory, technique

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]


def test_every_chart_is_drawn_beside_its_table(browser, signed_in, owner):  # noqa: F811
    RunFactory(owner=owner, gain=12, techniques=[technique("role")])
    llm = {"engine": OptimizationRun.Engine.LLM, "provider": "OpenAI", "model": "gpt-5-mini"}
    RunFactory(owner=owner, winner="rewrite", **llm)

    browser.get(f"{signed_in}/analytics/")

    canvases = browser.find_elements("css selector", "canvas[data-chart-url]")
    assert len(canvases) == 9
    drawn = "return window.Chart && Object.keys(Chart.instances).length"
    wait(browser, lambda b: b.execute_script(drawn) == 9)
    failed = browser.find_elements("css selector", ".chart-failed, .chart-empty")
    assert failed == [] and len(browser.find_elements("css selector", "figure.chart table")) == 9
    assert_no_csp_violation(browser, "the analytics page")
