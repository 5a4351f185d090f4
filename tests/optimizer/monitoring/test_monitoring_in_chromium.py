"""The Monitoring page in headless Chromium on the live test server: its tiles refresh every 5 s,
Pause stops that, a hidden tab asks for nothing; no Content-Security-Policy violation, nothing wider
than a 390 px screen."""

import time

import pytest
from django.conf import settings
from django.test import Client

pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By

from tests.browser.test_backups_page_in_chromium import fits
from tests.browser.test_pages_in_chromium import (  # it skips the module without Chromium
    assert_no_csp_violation,
    browser,  # noqa: F401 - the fixture
    narrow,
    wait,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]


@pytest.fixture
def staff_signed_in(browser, live_server, staff_user):  # noqa: F811
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/login/")
    client = Client()
    client.force_login(staff_user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": cookie, "path": "/"})
    return live_server.url


def as_of(browser) -> str:  # noqa: F811
    """The tiles' "As of" line, read in the page (an element found first may be swapped out meanwhile)."""
    return browser.execute_script("return document.querySelector('#monitoring-tiles > p.small').textContent")


def unchanged_for(browser, seconds: float) -> bool:  # noqa: F811
    before = as_of(browser)
    time.sleep(seconds)
    return as_of(browser) == before


def test_the_tiles_refresh_pause_and_rest_while_hidden(browser, staff_signed_in):  # noqa: F811
    browser.get(f"{staff_signed_in}/monitoring/")
    fits(browser, "the Monitoring page at 1280 px")
    first = as_of(browser)
    wait(browser, lambda driver: as_of(driver) != first, timeout=12)  # refreshed by htmx

    pause = browser.find_element(By.ID, "monitoring-pause")
    pause.click()
    assert pause.get_attribute("aria-pressed") == "true" and pause.text == "Resume refresh"
    assert unchanged_for(browser, 7)
    pause.click()
    resumed = as_of(browser)
    wait(browser, lambda driver: as_of(driver) != resumed, timeout=4)  # at once, not 5 s later

    browser.execute_script(
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    assert unchanged_for(browser, 7)
    hidden = as_of(browser)
    browser.execute_script(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    wait(browser, lambda driver: as_of(driver) != hidden, timeout=4)  # shown again: refreshed at once
    assert_no_csp_violation(browser, "the Monitoring page after its refreshes")

    narrow(browser, 390)
    browser.get(f"{staff_signed_in}/monitoring/")
    fits(browser, "the Monitoring page at 390 px")
