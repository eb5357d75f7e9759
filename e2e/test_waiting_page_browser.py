"""The waiting page in a real headless chromium: it renders, takes a justification, and moves on after a
decision by itself with JavaScript on, or on reload with JavaScript off."""
import time

import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import CLIENT_ID


def chromium(javascript, extra_arguments=()):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900",
                     *extra_arguments):
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def authorization_url(gate, redirect_uri, scope):
    client = OAuth2Session(CLIENT_ID, redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256")
    url, _ = client.create_authorization_url(gate.url + "/o/authorize/", code_verifier=generate_token(48))
    return url


def sign_in(driver):
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys("wonderland")
    driver.find_element(By.ID, "signin").click()


@pytest.fixture
def browser_js():
    driver = chromium(javascript=True)
    yield driver
    driver.quit()


@pytest.fixture
def browser_nojs():
    driver = chromium(javascript=False)
    yield driver
    driver.quit()


def test_waiting_page_takes_a_justification_and_moves_on_by_itself(gate, idp, callback_server, browser_js, tmp_path):
    driver = browser_js
    driver.get(authorization_url(gate, callback_server, "openid orders:read"))
    assert "/_scopegate/holds/" in driver.current_url
    waiting = driver.current_url
    assert driver.find_element(By.TAG_NAME, "h1").text == "Waiting for approval"
    assert "orders:read" in driver.page_source
    assert "Read your organisation's orders" in driver.find_element(By.TAG_NAME, "main").text
    driver.save_screenshot(str(tmp_path / "waiting.png"))

    driver.find_element(By.ID, "justification").send_keys("Needed for the quarterly orders export")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith(waiting) and d.find_elements(By.ID, "status"))
    pending = gate.pending()
    assert pending[0]["holds"][0]["justification"] == "Needed for the quarterly orders export"
    assert idp.received("/o/authorize/") == []

    # No reload from here on: the page must notice the decision itself.
    time.sleep(0.5)
    gate.cli("requests", "approve", pending[0]["id"])
    WebDriverWait(driver, 5).until(lambda d: "/accounts/login/" in d.current_url)
    sign_in(driver)
    WebDriverWait(driver, 10).until(lambda d: d.current_url.startswith(callback_server))
    assert "code=" in driver.current_url
    # The IdP has no favicon; anything else (a CSP violation, a script error) is a defect.
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
    assert errors == [], errors


def test_without_javascript_a_reload_moves_on(gate, idp, callback_server, browser_nojs):
    driver = browser_nojs
    driver.get(authorization_url(gate, callback_server, "openid orders:read"))
    assert "/_scopegate/holds/" in driver.current_url
    assert driver.find_element(By.TAG_NAME, "h1").text == "Waiting for approval"
    gate.cli("requests", "deny", gate.only_pending_id(), "--reason", "use the reporting app instead")
    driver.refresh()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.startswith(callback_server))
    assert "error=access_denied" in driver.current_url
    assert idp.received("/o/authorize/") == []


def test_another_browser_cannot_open_the_waiting_page(gate, callback_server, browser_js, browser_nojs):
    browser_js.get(authorization_url(gate, callback_server, "openid orders:read"))
    waiting = browser_js.current_url
    browser_nojs.get(waiting)
    assert "orders:read" not in browser_nojs.page_source
    assert "belongs to another browser" in browser_nojs.page_source
