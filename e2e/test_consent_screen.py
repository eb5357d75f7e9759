"""django-oauth-toolkit as it ships: a confidential client that is not marked `skip_authorization`, so
the IdP shows its consent screen, whose form posts the authorization parameters back to /o/authorize/
as hidden fields (some empty) with the query kept. Driven in headless chromium, as a person would."""
import json
from urllib.parse import parse_qs, urlparse

import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import CONSENT_CLIENT, SERVICE
from test_waiting_page_browser import chromium, sign_in


@pytest.fixture
def browser():
    driver = chromium(javascript=True)
    yield driver
    driver.quit()


def start(gate, redirect_uri, scope):
    client = OAuth2Session(
        CONSENT_CLIENT, SERVICE[1], redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(48)
    url, state = client.create_authorization_url(gate.url + "/o/authorize/", code_verifier=verifier, nonce=generate_token(16))
    return client, verifier, url, state


def consent(driver, button):
    """Waits for the IdP's consent screen and clicks one of its buttons ("Authorize" or "Cancel")."""
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "authorizationForm"))
    assert "E2E Consent App" in driver.page_source
    driver.find_element(By.CSS_SELECTOR, f"#authorizationForm input[type=submit][value={button}]").click()


def through_sign_in_and_consent(browser, url, callback_server, button):
    """Opens `url`, signs in at the IdP, answers its consent screen with `button`, and returns where the
    browser lands at the client."""
    browser.get(url)
    WebDriverWait(browser, 10).until(lambda d: "/accounts/login/" in d.current_url)
    sign_in(browser)
    consent(browser, button)
    WebDriverWait(browser, 10).until(lambda d: d.current_url.startswith(callback_server))
    return browser.current_url


def consent_posts(idp):
    return [entry for entry in idp.received("/o/authorize/") if entry["method"] == "POST"]


def test_the_consent_screen_of_approved_scopes_yields_tokens(gate, idp, callback_server, browser):
    client, verifier, url, state = start(gate, callback_server, "openid profile")
    callback = through_sign_in_and_consent(browser, url, callback_server, "Authorize")
    assert parse_qs(urlparse(callback).query)["state"] == [state]
    token = client.fetch_token(gate.url + "/o/token/", authorization_response=callback, code_verifier=verifier)
    assert set(token["scope"].split()) == {"openid", "profile"}
    # The consent post reached the IdP as its form sent it: the query kept, the hidden fields in the body.
    [posted] = consent_posts(idp)
    assert "client_id=e2e-consent" in posted["query"]
    assert "allow=Authorize" in posted["body"] and "csrfmiddlewaretoken=" in posted["body"]
    assert gate.pending() == []


@pytest.mark.parametrize("once", [False, True], ids=["standing approval", "approve once"])
def test_a_held_request_continues_through_the_consent_screen_after_approval(gate, idp, callback_server, browser, once):
    client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
    browser.get(url)
    assert "/_scopegate/holds/" in browser.current_url
    assert idp.received("/o/authorize/") == []
    gate.cli("requests", "approve", gate.only_pending_id(), *(["--once"] if once else []))
    WebDriverWait(browser, 10).until(lambda d: "/accounts/login/" in d.current_url)
    sign_in(browser)
    consent(browser, "Authorize")
    WebDriverWait(browser, 10).until(lambda d: d.current_url.startswith(callback_server))
    token = client.fetch_token(gate.url + "/o/token/", authorization_response=browser.current_url, code_verifier=verifier)
    assert "orders:read" in token["scope"].split()
    assert len(consent_posts(idp)) == 1
    # One approval request, decided once: the consent post opened no second one.
    assert gate.pending() == []
    assert len(json.loads(gate.cli("requests", "list", "--json"))) == 1


def test_cancel_on_the_consent_screen_reaches_the_client_as_access_denied(gate, idp, callback_server, browser):
    _, _, url, state = start(gate, callback_server, "openid")
    params = parse_qs(urlparse(through_sign_in_and_consent(browser, url, callback_server, "Cancel")).query)
    assert params["error"] == ["access_denied"] and params["state"] == [state]


def test_a_consent_form_tampered_to_ask_for_more_never_reaches_the_idp(gate, idp, callback_server, browser):
    _, _, url, _ = start(gate, callback_server, "openid")
    browser.get(url)
    WebDriverWait(browser, 10).until(lambda d: "/accounts/login/" in d.current_url)
    sign_in(browser)
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "authorizationForm"))
    browser.execute_script("document.querySelector('#authorizationForm input[name=scope]').value = 'openid orders:write'")
    browser.find_element(By.CSS_SELECTOR, "#authorizationForm input[type=submit][value=Authorize]").click()
    WebDriverWait(browser, 10).until(lambda d: "/_scopegate/holds/" in d.current_url)
    assert consent_posts(idp) == []
    [pending] = gate.pending()
    assert pending["scopes"] == ["orders:write"]
