"""The Batch pages in headless Chromium on the live test server: three prompts pasted (one of them a
long unbroken line), previewed, started, and followed live until every row is done (the items run by
``pipeline.run_next`` here, as a worker does), at 1280 and 390 px, with no Content-Security-Policy
violation and nothing wider than the screen. With BROWSER_SHOTS=<folder> the pages are saved there
as PNG, to look at."""

import pytest
from django.core.cache import caches

from optimizer import pipeline
from optimizer.models import Batch, OptimizationRun

pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from tests.browser.test_backups_page_in_chromium import fits, shot
from tests.browser.test_pages_in_chromium import (  # it skips the module without Chromium
    browser,  # noqa: F401 - the fixture
    narrow,
    signed_in,  # noqa: F401 - the fixture
    wait,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]
PROMPTS = [
    "Explain how tides work to a ten-year-old, with one everyday comparison.",
    "Summarize the attached article for a busy manager: " + "averyveryverylongunbrokenword" * 12,
    "Write a short poem about autumn leaves for a greeting card.",
]


@pytest.fixture(autouse=True)
def _clean_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.mark.parametrize("width", [1280, 390])
def test_paste_preview_start_and_watch_the_rows_turn_done(browser, signed_in, width):  # noqa: F811
    if width < 1280:
        narrow(browser, width)
    browser.get(f"{signed_in}/batch/")
    fits(browser, f"the Batch page at {width} px")
    shot(browser, f"batch-new-{width}")

    browser.find_element(By.CSS_SELECTOR, "#batch-form button[type=submit]").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "batch-form"), "There is nothing to optimize"))
    assert not Batch.objects.exists()

    browser.find_element(By.NAME, "text").send_keys("\n".join([*PROMPTS, "", PROMPTS[0]]))
    Select(browser.find_element(By.NAME, "model")).select_by_value("builtin")
    browser.find_element(By.NAME, "name").send_keys("Three prompts")
    browser.find_element(By.CSS_SELECTOR, "#batch-form button[type=submit]").click()
    wait(
        browser,
        EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".batch-preview"), "3 prompts to optimize"),
    )
    preview = browser.find_element(By.CSS_SELECTOR, ".batch-preview").text
    assert (
        "1 duplicate that shares an earlier row's result" in preview and "1 row left out (1 empty)" in preview
    )
    assert "no model call, no cost" in preview
    assert len(browser.find_elements(By.CSS_SELECTOR, "#batch-results tbody tr")) == 4
    fits(browser, f"the preview at {width} px")
    shot(browser, f"batch-preview-{width}")
    batch = Batch.objects.get()
    assert batch.status == "draft" and not OptimizationRun.objects.exists()

    browser.find_element(By.XPATH, "//button[normalize-space()='Start']").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "batch-progress"), "Queued"))
    assert browser.find_element(By.ID, "batch-progress").get_attribute("hx-trigger") == "every 2s"
    assert "queued" in browser.find_element(By.ID, "batch-results").text
    fits(browser, f"a running batch at {width} px")
    shot(browser, f"batch-running-{width}")

    assert pipeline.run_next(engine=OptimizationRun.Engine.BUILTIN) == 3  # what a worker does
    wait(browser, EC.text_to_be_present_in_element((By.ID, "batch-progress"), "100%"), timeout=15)
    statuses = [
        cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#batch-results td[data-label=Status]")
    ]
    assert statuses == ["done", "done", "done", "duplicate of row 1"]
    polling = browser.find_element(By.ID, "batch-progress").get_attribute("hx-trigger")
    assert polling is None  # the finished batch's panel no longer polls
    assert (
        len(browser.find_elements(By.CSS_SELECTOR, "#batch-results a[href*='/runs/']:not([href*='#'])")) == 4
    )
    fits(browser, f"a finished batch at {width} px")
    shot(browser, f"batch-done-{width}")

    Select(browser.find_element(By.NAME, "sort")).select_by_value("-row")
    wait(browser, EC.url_contains("sort=-row"))
    rows = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#batch-results td[data-label=Row]")]
    assert rows == ["5", "3", "2", "1"]
    fits(browser, f"the results sorted at {width} px")

    browser.find_element(By.CSS_SELECTOR, "#batch-results a[href*='/runs/']").click()
    wait(browser, EC.url_contains("/runs/"))
    assert "Item 1 of batch Three prompts" in browser.find_element(By.CSS_SELECTOR, ".page-head").text
    fits(browser, f"an item's run page at {width} px")
    shot(browser, f"batch-run-{width}")

    browser.get(f"{signed_in}/batch/")
    assert "Three prompts" in browser.find_element(By.CSS_SELECTOR, ".batches").text
    fits(browser, f"the batch list at {width} px")
    shot(browser, f"batch-list-{width}")
