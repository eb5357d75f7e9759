"""Teams without a bot: cards posted to a Teams Workflows webhook link to ScopeGate's approval page,
where approvers sign in at django-oauth-toolkit through ScopeGate (ScopeGate as an OpenID Connect
client of the IdP it fronts) and decide with a CSRF-protected POST. GET alone changes nothing."""
import json
import re
import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import conftest
import fake_teams
from conftest import BrowserSession, free_port
from fake_teams import FakeTeams
from test_authorization_flow import finish, start
from test_waiting_page_browser import chromium

ALICE_SUB = "1"  # django-oauth-toolkit's `sub` is the user's primary key: alice was created first.


@pytest.fixture
def teams():
    fake = FakeTeams(free_port())
    yield fake
    fake.stop()


@pytest.fixture
def page_gate(idp, callback_server, tmp_path, teams):
    extra = f"""
teams: {{}}
routes:
  - name: everyone
    teams:
      webhook_env: E2E_WORKFLOW_URL
    approval_page:
      approvers:
        users: ["{ALICE_SUB}"]
default_route: everyone
"""
    instance = conftest.sign_in_gate(idp, callback_server, tmp_path, extra, env={"E2E_WORKFLOW_URL": f"{teams.base}/workflows/approvals"})
    instance.start()
    idp.reset()
    yield instance
    instance.stop()


def held(gate, callback_server, scope="openid orders:read"):
    client, verifier, url, state = start(gate, callback_server, scope)
    browser = BrowserSession(gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    return client, verifier, browser, page, state, gate.only_pending_id()


def state_of(gate, request_id):
    return json.loads(gate.cli("requests", "show", request_id))["state"]


def card_link(teams):
    post = teams.wait_for("workflow.post")[0]["body"]
    card = post["attachments"][0]["content"]
    assert post["type"] == "message" and card["version"] == "1.4"
    assert [a["type"] for a in card["actions"]] == ["Action.OpenUrl"], "a webhook card can only link out"
    return card["actions"][0]["url"], card


def signed_in(gate, callback_server, url, user=("alice", "wonderland")):
    """A browser that followed the page's sign-in link through the IdP; returns it and the page."""
    approver = BrowserSession(gate, callback_server, user=user)
    page = approver.session.get(url, timeout=10)
    link = re.search(r'href="(/_scopegate/sign-in\?return=[^"]+)"', page.text).group(1)
    kind, page = approver.go(gate.url + link.replace("&amp;", "&"))
    assert kind == "page" and page.url.startswith(url)
    return approver, page


def test_the_card_links_to_a_page_that_decides_only_after_sign_in_and_a_post(page_gate, idp, teams, callback_server):
    client, verifier, browser, waiting, _, request_id = held(page_gate, callback_server)
    url, card = card_link(page_gate and teams)
    assert url == f"{page_gate.url}/_scopegate/approvals/{request_id}"
    assert "orders:read" in json.dumps(card) and "E2E App" in json.dumps(card)
    # GET changes nothing, with or without cookies; a POST without a sign-in neither.
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 200 and "Sign in to decide" in anonymous.text and 'name="csrf"' not in anonymous.text
    refused = requests.post(url, data={"decision": "approve", "csrf": "0" * 64}, timeout=10, allow_redirects=False)
    assert refused.status_code == 401
    assert state_of(page_gate, request_id) == "pending"

    approver, page = signed_in(page_gate, callback_server, url)
    assert "Approve once" in page.text and "orders:read" in page.text
    assert state_of(page_gate, request_id) == "pending", "signing in decides nothing"
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
    # A cross-site form, and one whose token is not this session's, decide nothing.
    assert approver.session.post(url, data={"decision": "approve", "csrf": csrf}, headers={"Origin": "https://evil.example"},
                                 timeout=10, allow_redirects=False).status_code == 403
    assert approver.session.post(url, data={"decision": "approve", "csrf": "a" * 64}, timeout=10,
                                 allow_redirects=False).status_code == 403
    assert state_of(page_gate, request_id) == "pending"

    decided = approver.session.post(url, data={"decision": "approve", "csrf": csrf}, headers={"Origin": page_gate.url},
                                    timeout=10, allow_redirects=False)
    assert decided.status_code == 303
    shown = json.loads(page_gate.cli("requests", "show", request_id))
    assert shown["state"] == "approved" and shown["decided_by"] == f"page:{ALICE_SUB}"
    kind, callback = browser.go(waiting.url)
    assert kind == "callback"
    assert "orders:read" in finish(page_gate, client, verifier, callback)["scope"].split()
    followup = teams.wait_for("workflow.post", where=lambda call: "Approved" in json.dumps(call["body"]))[-1]
    assert "actions" not in followup["body"]["attachments"][0]["content"], "the decision is posted without a link to decide"
    assert "Approved by" in approver.session.get(url, timeout=10).text


def test_someone_signed_in_who_is_no_approver_decides_nothing(page_gate, idp, teams, callback_server):
    _, _, _, _, _, request_id = held(page_gate, callback_server)
    url, _ = card_link(teams)
    mallory, page = signed_in(page_gate, callback_server, url, user=("mallory", "looking-glass"))
    assert "not an approver" in page.text and 'name="csrf"' not in page.text
    # The page offers her no form; a POST she makes up is refused all the same.
    response = mallory.session.post(url, data={"decision": "approve", "csrf": "0" * 64}, timeout=10, allow_redirects=False)
    assert response.status_code == 403
    assert state_of(page_gate, request_id) == "pending"
    authorizations = idp.received("/o/authorize/")
    assert authorizations and all("client_id=e2e-approvals" in e["query"] for e in authorizations), \
        "the IdP saw only the sign-in, never the held request"


def test_a_sign_in_callback_not_started_in_this_browser_is_refused(page_gate, callback_server):
    response = requests.get(page_gate.url + "/_scopegate/sign-in/callback?code=x&state=forged", timeout=10)
    assert response.status_code == 400 and "not started in this browser" in response.text
    outside = requests.get(page_gate.url + "/_scopegate/sign-in?return=https://evil.example/", timeout=10, allow_redirects=False)
    assert outside.status_code == 400, "sign-in returns only to ScopeGate's approval pages"


def test_the_approval_page_in_chromium(page_gate, idp, teams, callback_server):
    _, _, browser, waiting, _, request_id = held(page_gate, callback_server)
    url, _ = card_link(teams)
    driver = chromium(javascript=True)
    try:
        driver.get(url)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Approval requested"
        assert "orders:read" in driver.find_element(By.TAG_NAME, "main").text
        driver.find_element(By.LINK_TEXT, "Sign in").click()
        driver.find_element(By.ID, "username").send_keys("alice")
        driver.find_element(By.ID, "password").send_keys("wonderland")
        driver.find_element(By.ID, "signin").click()
        WebDriverWait(driver, 10).until(lambda d: d.current_url == url)
        assert state_of(page_gate, request_id) == "pending"
        driver.find_element(By.CSS_SELECTOR, 'button[value="approve_once"]').click()
        # The POST answers 303 and the page loads again: a heading read while it reloads is stale.
        WebDriverWait(driver, 10, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: d.find_element(By.TAG_NAME, "h1").text == "Approved once")
        problems = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING") and "favicon.ico" not in e["message"]]
        assert problems == [], "no CSP violations or script errors"
    finally:
        driver.quit()
    assert state_of(page_gate, request_id) == "approved_once"
    kind, _ = browser.go(waiting.url)
    assert kind == "callback"


def test_a_step_up_tier_is_decided_only_on_the_page_after_a_fresh_sign_in(idp, callback_server, tmp_path):
    """A tier with step_up: a click in Slack decides nothing and the message links to the approval
    page; the page takes a decision only from a sign-in whose `auth_time` is recent, and asks the IdP
    to authenticate again (prompt=login, max_age) to get one."""
    from fake_slack import FakeSlack, interaction, sign
    from test_slack import INTERACTIONS, SLACK_ENV, slack_config
    slack = FakeSlack(free_port())
    extra = f"""
tiers:
  - name: low
  - name: elevated
    step_up:
      max_age: 5m
  - name: critical
routes:
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
    approval_page:
      approvers:
        users: ["{ALICE_SUB}"]
default_route: everyone
"""
    gate = conftest.sign_in_gate(idp, callback_server, tmp_path, extra + slack_config(slack), env=SLACK_ENV)
    gate.start()
    idp.reset()
    try:
        client, verifier, browser, waiting, _, request_id = held(gate, callback_server)
        url = f"{gate.url}/_scopegate/approvals/{request_id}"
        posted = slack.wait_for("chat.postMessage")[0]
        buttons = [e for block in posted["arguments"]["blocks"] if block["type"] == "actions" for e in block["elements"]]
        assert [(b["type"], b.get("url")) for b in buttons] == [("button", url)], "only a link to the page, no decision buttons"
        # A click on Approve (an old message, a forged one) decides nothing and says where to go.
        body = interaction("scopegate_approve", request_id, "U0ALICE")
        assert requests.post(gate.url + INTERACTIONS, data=body, headers=sign(body), timeout=10).status_code == 200
        told = slack.wait_for("chat.postEphemeral")[-1]["arguments"]["text"]
        assert "fresh sign-in" in told and url in told
        assert state_of(gate, request_id) == "pending"

        # Signed in an hour ago (the IdP's session still valid): the page asks to sign in again.
        approver = BrowserSession(gate, callback_server)
        kind, _ = approver.go(f"{gate.url}/_scopegate/sign-in?return=/_scopegate/approvals/{request_id}")
        idp.age_sign_in("alice", 3600)
        kind, page = approver.go(f"{gate.url}/_scopegate/sign-in?return=/_scopegate/approvals/{request_id}")
        assert kind == "page" and page.url == url
        assert "Sign in again" in page.text and 'name="csrf"' not in page.text
        assert state_of(gate, request_id) == "pending"

        # Signing in again asks the IdP to authenticate anew; then the approver decides.
        idp.reset()
        link = re.search(r'href="(/_scopegate/sign-in\?[^"]+)"[^>]*>Sign in again', page.text).group(1).replace("&amp;", "&")
        assert "max_age=300" in link
        kind, page = approver.go(gate.url + link)
        assert kind == "page" and page.url == url
        asked = idp.received("/o/authorize/")[0]["query"]
        assert "prompt=login" in asked and "max_age=300" in asked
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
        decided = approver.session.post(url, data={"decision": "approve", "csrf": csrf}, headers={"Origin": gate.url},
                                        timeout=10, allow_redirects=False)
        assert decided.status_code == 303
        shown = json.loads(gate.cli("requests", "show", request_id))
        assert shown["state"] == "approved" and shown["decided_by"] == f"page:{ALICE_SUB}"
        assert shown["reason"].startswith("after a sign-in at the identity provider at ")
        kind, callback = browser.go(waiting.url)
        assert kind == "callback"
        assert "orders:read" in finish(gate, client, verifier, callback)["scope"].split()
    finally:
        gate.stop()
        slack.stop()


def test_the_page_approves_some_of_the_scopes_and_the_token_has_only_those(page_gate, idp, teams, callback_server):
    client, verifier, browser, waiting, _, request_id = held(page_gate, callback_server, scope="openid orders:read orders:write")
    url, _ = card_link(teams)
    approver, page = signed_in(page_gate, callback_server, url)
    assert 'name="scope_0" value="orders:read" checked' in page.text and 'name="scope_1" value="orders:write" checked' in page.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
    post = lambda fields: approver.session.post(url, data=dict(csrf=csrf, decision="approve", partial="1", **fields),
                                                headers={"Origin": page_gate.url}, timeout=10, allow_redirects=False)
    # Nothing ticked approves nothing; a scope that was not asked for is refused.
    assert post({}).status_code == 403
    assert post({"scope_0": "admin:org"}).status_code == 403
    assert state_of(page_gate, request_id) == "pending"
    assert post({"scope_1": "orders:write"}).status_code == 303
    shown = json.loads(page_gate.cli("requests", "show", request_id))
    assert shown["state"] == "approved" and shown["approved_scopes"] == ["orders:write"]
    assert "Approved only orders:write; left out: orders:read." in approver.session.get(url, timeout=10).text
    kind, callback = browser.go(waiting.url)
    assert kind == "callback"
    assert set(finish(page_gate, client, verifier, callback)["scope"].split()) == {"openid", "orders:write"}
