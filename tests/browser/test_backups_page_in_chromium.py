"""The Backups page in headless Chromium on the live test server: "Back up now" followed live until
done, an upload good and bad, a restore's dry run and confirmation, at 1280 and 390 px, with no
Content-Security-Policy violation and nothing wider than the screen. With BROWSER_SHOTS=<folder>
the pages are saved there as PNG, to look at."""

import base64
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.test import Client
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from backups.models import Backup
from tests.factories import StaffFactory

pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

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


@pytest.fixture(autouse=True)
def _clean(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    caches["default"].clear()
    get_broker(settings.FAST_QUEUE).purge_queue()
    yield
    get_broker(settings.FAST_QUEUE).purge_queue()
    caches["default"].clear()


@pytest.fixture(autouse=True)
def _requests_in_a_transaction():
    """The live server's requests run in a transaction (the restore's safety backup with them):
    outside one, a backup on SQLite reads a copy through a connection of its own, which Django's
    test case refuses to open (the command's tests cover that path, in a process of their own)."""
    database = connections.settings[DEFAULT_DB_ALIAS]
    database["ATOMIC_REQUESTS"], before = True, database.get("ATOMIC_REQUESTS", False)
    yield
    database["ATOMIC_REQUESTS"] = before


@pytest.fixture
def as_superuser(browser, live_server):  # noqa: F811 - the fixture imported above
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/login/")
    client = Client()
    client.force_login(StaffFactory(username="root"))
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": cookie, "path": "/"})
    return live_server.url


def shot(driver, name: str) -> None:
    folder = os.environ.get("BROWSER_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        whole = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True})
        (Path(folder) / f"{name}.png").write_bytes(base64.b64decode(whole["data"]))


def fits(driver, where: str) -> None:
    width = driver.execute_script("return window.innerWidth")
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width, where
    assert_no_csp_violation(driver, where)


def run_the_queued_backup() -> None:
    """What the task worker would do with the one task in the fast queue. In a transaction: outside
    one, SQLite's backup reads a copy through a connection of its own, which a test may not open."""
    broker = get_broker(settings.FAST_QUEUE)
    [(_, payload)] = broker.dequeue()
    task = SignedPackage.loads(payload)
    with transaction.atomic():
        import_string(task["func"])(*task["args"], **task["kwargs"])


@pytest.mark.parametrize("width", [1280, 390])
def test_back_up_now_upload_and_restore_in_the_browser(browser, as_superuser, width, tmp_path):  # noqa: F811
    if width < 1280:
        narrow(browser, width)
    browser.get(f"{as_superuser}/backups/")
    assert "No backup yet." in browser.find_element(By.ID, "backup-freshness").text
    fits(browser, f"the empty Backups page at {width} px")
    shot(browser, f"backups-empty-{width}")

    browser.find_element(By.NAME, "note").send_keys("before the upgrade")
    browser.find_element(By.CSS_SELECTOR, "#backup-now button[type=submit]").click()
    wait(
        browser, EC.text_to_be_present_in_element((By.ID, "backup-now"), "Queued: waiting for a task worker.")
    )
    fits(browser, f"a queued backup at {width} px")
    shot(browser, f"backups-queued-{width}")
    run_the_queued_backup()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "backup-now"), "is done"))
    assert "Last good backup:" in browser.find_element(By.ID, "backup-freshness").text
    assert "before the upgrade" in browser.find_element(By.ID, "backup-list").text
    fits(browser, f"a finished backup at {width} px")
    backup = Backup.objects.get()

    upload = browser.find_element(By.CSS_SELECTOR, "#backup-upload input[type=file]")
    upload.send_keys(backup.name)
    browser.find_element(By.CSS_SELECTOR, "#backup-upload button[type=submit]").click()
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "Uploaded and verified"))
    not_ours = tmp_path / "notes.zip"
    not_ours.write_text("not a backup")
    browser.find_element(By.CSS_SELECTOR, "#backup-upload input[type=file]").send_keys(str(not_ours))
    browser.find_element(By.CSS_SELECTOR, "#backup-upload button[type=submit]").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "backup-upload"), "not a ZIP file"))
    fits(browser, f"a refused upload at {width} px")
    shot(browser, f"backups-list-{width}")

    browser.get(f"{as_superuser}/backups/{backup.pk}/restore/")
    assert "Prompts" in browser.find_element(By.CSS_SELECTOR, ".restore-plan").text
    fits(browser, f"the restore's dry run at {width} px")
    shot(browser, f"backups-restore-{width}")
    browser.find_element(By.NAME, "confirm").send_keys("RESTORE")
    browser.find_element(By.CSS_SELECTOR, ".restore-confirm button[type=submit]").click()
    wait(
        browser,
        EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), f"Restored backup {backup.pk}"),
    )
    assert browser.current_url.endswith("/backups/")
    fits(browser, f"the page after a restore at {width} px")
    shot(browser, f"backups-restored-{width}")
