"""The pages in a real browser (headless Chromium through selenium), on the live test server: no
Content-Security-Policy violation anywhere (the CSP allows no inline style or script, and htmx or a
page that breaks that rule only shows it in the browser's console), the History page's address and
fields after Back, and the narrow-screen header. Skipped where selenium, Chromium or chromedriver is
missing, so the suite still runs with Python alone."""

import shutil

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import Client

from tests.optimizer.test_run_views import make_run

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402 - only once selenium is there
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "needs Chromium and chromedriver (apt install chromium chromium-driver)", allow_module_level=True
    )

pytestmark = [
    pytest.mark.django_db(transaction=True),  # the live server reads what the test writes
    # The live server starts before the tests' own STATIC_ROOT is set; it serves static files itself.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

# Installed before any script of each page runs: every violation the page causes is recorded.
VIOLATION_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => window.__cspViolations.push(
  `${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
  + ` at ${event.sourceFile}:${event.lineNumber} ${event.sample}`));
"""
HAIKU = "Write a haiku about {season}."


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": VIOLATION_LISTENER})
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def _clean_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def signed_in(browser, live_server, owner):
    """The browser holds the owner's session (the login page itself is checked on the way)."""
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/login/")
    assert_no_csp_violation(browser, "the login page")
    client = Client()
    client.force_login(owner)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": cookie, "path": "/"})
    return live_server.url


def assert_no_csp_violation(browser, where: str) -> None:
    """Both witnesses: the page's securitypolicyviolation events and the console's CSP messages."""
    events = browser.execute_script("return window.__cspViolations || []")
    console = [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    assert events == [] and console == [], f"CSP violations on {where}: {events + console}"


def wait(browser, condition, timeout: float = 10):
    """``condition`` within ``timeout``, looked at again when htmx swapped the element it was
    reading out of the page meanwhile (Chromium then says "Node with given id does not belong to
    the document", not a stale element: seen once in CI)."""
    ignored = (StaleElementReferenceException, WebDriverException)
    return WebDriverWait(browser, timeout, ignored_exceptions=ignored).until(condition)


def narrow(browser, width: int = 390) -> None:
    metrics = {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def test_the_violation_check_sees_an_inline_style(browser, signed_in):
    """The check below is only worth something if it fails: an inline style attribute must trip it."""
    browser.get(f"{signed_in}/")
    browser.execute_script("""document.body.insertAdjacentHTML("beforeend", '<p style="color: red">x</p>')""")

    with pytest.raises(AssertionError, match="style-src"):
        assert_no_csp_violation(browser, "a page with an inline style")


def test_no_page_breaks_the_csp_on_the_way_through_a_run(browser, signed_in, owner):
    """Form errors, a submission landing on the run's page, the diff's tabs, an edit saved as a new
    version, Optimize again with…, History's filters with Enter and Back, and the Costs page."""
    make_run(owner, text=HAIKU, prompt_type="creative")  # the submission below is its cache hit
    browser.get(f"{signed_in}/")
    browser.find_element(By.CSS_SELECTOR, "#optimize-form button[type=submit]").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "optimize-form"), "this one is empty"))
    assert_no_csp_violation(browser, "the Optimize page with form errors")

    browser.find_element(By.NAME, "text").send_keys(HAIKU)
    Select(browser.find_element(By.NAME, "type")).select_by_value("creative")
    Select(browser.find_element(By.NAME, "model")).select_by_value("builtin")
    browser.find_element(By.CSS_SELECTOR, "#optimize-form button[type=submit]").click()
    wait(browser, EC.url_contains("/runs/"))
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#diff .tabs")))  # the lazy diff came
    assert not browser.find_elements(By.ID, "optimize-form") and not browser.find_elements(By.ID, "checklist")
    browser.find_element(By.LINK_TEXT, "Side by side").click()
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#diff .diff-table")))
    assert_no_csp_violation(browser, "the run's page")

    run_url = browser.current_url
    browser.find_element(By.CSS_SELECTOR, ".edit-version summary").click()
    edited = browser.find_element(By.NAME, "edit-text")
    edited.send_keys(Keys.CONTROL, Keys.END)
    edited.send_keys("\nAnswer in 17 syllables.")
    browser.find_element(By.CSS_SELECTOR, "#edit button[type=submit]").click()
    wait(browser, lambda driver: driver.current_url != run_url)
    assert "Edited by hand" in browser.find_element(By.CSS_SELECTOR, ".facts").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#versions li")) == 2
    assert_no_csp_violation(browser, "an edited version's page")

    browser.find_element(By.PARTIAL_LINK_TEXT, "Optimize again with").click()
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#optimize-form h1"), "Optimize again"))
    assert browser.find_element(By.NAME, "text").get_attribute("value").endswith("Answer in 17 syllables.")
    assert_no_csp_violation(browser, "Optimize again with…")

    browser.get(f"{signed_in}/history/")
    browser.find_element(By.NAME, "q").send_keys("haiku", Keys.ENTER)
    wait(browser, EC.url_contains("q=haiku"))
    Select(browser.find_element(By.NAME, "type")).select_by_value("coding")
    wait(browser, EC.url_contains("type=coding"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "history-results"), "No optimizations match"))
    export = browser.find_element(By.PARTIAL_LINK_TEXT, "JSON").get_attribute("href")
    assert export.endswith("/history/export.json?q=haiku&type=coding&sort=newest")
    browser.back()
    wait(browser, lambda driver: "type=coding" not in driver.current_url)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#history-results tbody tr")))
    assert browser.current_url.endswith("/history/?q=haiku&sort=newest")
    assert browser.find_element(By.NAME, "q").get_attribute("value") == "haiku"
    assert browser.find_element(By.NAME, "type").get_attribute("value") == ""
    assert len(browser.find_elements(By.CSS_SELECTOR, "#history-results tbody tr")) == 3  # run, hit, edit
    assert_no_csp_violation(browser, "History after Enter and Back")

    browser.get(f"{signed_in}/costs/")
    wait(browser, EC.presence_of_element_located((By.TAG_NAME, "canvas")))
    assert_no_csp_violation(browser, "the Costs page")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_history_filters_labels_stand_in_line(browser, signed_in, width):
    """The labels of each row of filters share one top: a date input, taller than a select, pushed
    From and To out of line, and a long label wrapped onto two lines."""
    if width < 1280:
        narrow(browser, width)
    browser.get(f"{signed_in}/history/")

    rows: dict[int, set[int]] = {}
    for label in browser.find_elements(
        By.CSS_SELECTOR, ".filters > div:not(.filter-q):not(.checkbox) > label"
    ):
        control = browser.find_element(By.ID, label.get_attribute("for"))
        rows.setdefault(control.rect["y"] // 10, set()).add(round(label.rect["y"]))
        assert label.rect["height"] < 24, f"{label.text!r} wraps"
    assert rows and all(len(tops) == 1 for tops in rows.values()), rows
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    assert_no_csp_violation(browser, f"History at {width} px")


def test_the_narrow_screens_header_is_one_row_with_a_menu(browser, signed_in):
    narrow(browser)
    browser.get(f"{signed_in}/history/")
    header = browser.find_element(By.CSS_SELECTOR, ".site-header")
    toggle = browser.find_element(By.CSS_SELECTOR, ".menu-toggle")
    nav = browser.find_element(By.CSS_SELECTOR, ".site-nav")

    assert header.rect["height"] < 70 and toggle.is_displayed() and not nav.is_displayed()
    toggle.click()
    assert nav.is_displayed() and toggle.get_attribute("aria-expanded") == "true"
    assert browser.find_element(By.LINK_TEXT, "Costs").is_displayed()
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert not nav.is_displayed() and toggle.get_attribute("aria-expanded") == "false"
    assert_no_csp_violation(browser, "the narrow header")

    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.get(f"{signed_in}/history/")
    assert browser.find_element(By.CSS_SELECTOR, ".site-nav").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, ".menu-toggle").is_displayed()
