"""Slack approvals end to end: django-oauth-toolkit behind ScopeGate, Authlib as the client, a fake
Slack Web API recording what ScopeGate posts, and button clicks signed exactly as Slack signs them."""
import json
import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests

import fake_slack
from conftest import BrowserSession, Gate, free_port
from fake_slack import FakeSlack, interaction, sign
from test_authorization_flow import finish, start

INTERACTIONS = "/_scopegate/slack/interactions"


@pytest.fixture
def slack():
    fake = FakeSlack(free_port())
    fake.groups["S0SECURITY"] = ["U0BOB", "U0CAROL"]
    yield fake
    fake.stop()


SLACK_ENV = {"E2E_SLACK_BOT_TOKEN": fake_slack.BOT_TOKEN, "E2E_SLACK_SIGNING_SECRET": fake_slack.SIGNING_SECRET}


def slack_config(slack):
    """The slack section of a ScopeGate that posts to the fake; its secrets come from SLACK_ENV."""
    return f"""
slack:
  team_id: {fake_slack.TEAM_ID}
  bot_token_env: E2E_SLACK_BOT_TOKEN
  signing_secret_env: E2E_SLACK_SIGNING_SECRET
  api_url: {slack.api_url}"""


@pytest.fixture
def slack_gate(idp, callback_server, tmp_path, slack):
    extra = slack_config(slack) + f"""
routes:
  - name: critical
    match:
      tiers: [critical]
    channel: C0CRITICAL
    approvers:
      groups: [S0SECURITY]
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
default_route: everyone
"""
    instance = Gate(idp, callback_server, tmp_path, extra=extra, env=SLACK_ENV)
    instance.start()
    idp.reset()
    yield instance
    instance.stop()


def click(gate, action, request_id, user="U0ALICE", **kwargs):
    body = interaction(action, request_id, user, **kwargs)
    return requests.post(gate.url + INTERACTIONS, data=body, headers=sign(body), timeout=10)


def state_of(gate, request_id):
    return json.loads(gate.cli("requests", "show", request_id))["state"]


def blocks(call):
    return json.dumps(call["arguments"].get("blocks"))


def test_an_approve_click_in_slack_releases_the_browser_and_the_flow_yields_a_token(slack_gate, idp, slack, callback_server):
    client, verifier, url, _ = start(slack_gate, callback_server, "openid orders:read")
    browser = BrowserSession(slack_gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    request_id = slack_gate.only_pending_id()
    posts = slack.wait_for("chat.postMessage")
    time.sleep(0.5)
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 1, "one message, to the routed channel"
    assert posts[0]["arguments"]["channel"] == "C0APPROVALS"
    assert request_id in blocks(posts[0]) and "orders:read" in blocks(posts[0])
    assert idp.received("/o/authorize/") == []

    response = click(slack_gate, "scopegate_approve", request_id)
    assert response.status_code == 200
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    assert "orders:read" in finish(slack_gate, client, verifier, callback)["scope"].split()
    assert json.loads(slack_gate.cli("requests", "show", request_id))["decided_by"] == f"slack:{fake_slack.TEAM_ID}/U0ALICE"
    updates = slack.wait_for("chat.update", where=lambda call: "Approved" in blocks(call))
    assert updates[-1]["arguments"]["channel"] == "C0APPROVALS"
    assert updates[-1]["arguments"]["ts"] == "1700000000.000002", "the posted message is updated, not a new one"
    assert "scopegate_approve" not in blocks(updates[-1])


def test_a_deny_click_reaches_the_client_as_access_denied(slack_gate, idp, slack, callback_server):
    _, _, url, state = start(slack_gate, callback_server, "openid orders:read")
    browser = BrowserSession(slack_gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    request_id = slack_gate.only_pending_id()
    assert click(slack_gate, "scopegate_deny", request_id).status_code == 200
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    params = parse_qs(urlparse(callback).query)
    assert params["error"] == ["access_denied"] and params["state"] == [state]
    slack.wait_for("chat.update", where=lambda call: "Denied" in blocks(call))
    assert idp.received("/o/authorize/") == []


def test_critical_scopes_are_decided_by_their_route_only(slack_gate, idp, slack, callback_server):
    _, _, url, _ = start(slack_gate, callback_server, "openid orders:write")
    kind, page = BrowserSession(slack_gate, callback_server).go(url)
    assert kind == "page"
    request_id = slack_gate.only_pending_id()
    post = slack.wait_for("chat.postMessage")[0]
    assert post["arguments"]["channel"] == "C0CRITICAL"
    assert click(slack_gate, "scopegate_approve", request_id, user="U0ALICE").status_code == 200
    assert state_of(slack_gate, request_id) == "pending"
    ephemeral = slack.wait_for("chat.postEphemeral")[-1]["arguments"]
    assert ephemeral["user"] == "U0ALICE" and "not an approver" in ephemeral["text"]
    slack.guests.add("U0BOB")
    assert click(slack_gate, "scopegate_approve", request_id, user="U0BOB").status_code == 200
    assert state_of(slack_gate, request_id) == "pending", "a guest account decides nothing, even in the group"
    assert [c["arguments"]["user"] for c in slack.calls_to("users.info")] == ["U0BOB"]
    assert click(slack_gate, "scopegate_approve", request_id, user="U0CAROL").status_code == 200
    assert state_of(slack_gate, request_id) == "approved"


@pytest.mark.parametrize("case", ["bad signature", "stale timestamp", "replay", "unauthorized", "other workspace", "decided", "malformed"])
def test_bad_clicks_change_nothing_and_the_idp_receives_nothing(slack_gate, idp, slack, callback_server, case):
    _, _, url, _ = start(slack_gate, callback_server, "openid orders:read")
    kind, _ = BrowserSession(slack_gate, callback_server).go(url)
    assert kind == "page"
    request_id = slack_gate.only_pending_id()
    endpoint = slack_gate.url + INTERACTIONS
    body = interaction("scopegate_approve", request_id, "U0ALICE")
    expected_state = "pending"
    if case == "bad signature":
        headers = sign(body, secret="a-guess")
        assert requests.post(endpoint, data=body, headers=headers, timeout=10).status_code == 401
    elif case == "stale timestamp":
        headers = sign(body, timestamp=time.time() - 301)
        assert requests.post(endpoint, data=body, headers=headers, timeout=10).status_code == 401
    elif case == "replay":
        deny = interaction("scopegate_deny", request_id, "U0ALICE", trigger_id="1.2.same")
        assert requests.post(endpoint, data=deny, headers=sign(deny), timeout=10).status_code == 200
        expected_state = "denied"
        approve = interaction("scopegate_approve", request_id, "U0ALICE", trigger_id="1.2.same")
        assert requests.post(endpoint, data=approve, headers=sign(approve), timeout=10).status_code == 200
    elif case == "unauthorized":
        assert click(slack_gate, "scopegate_approve", request_id, user="U0MALLORY").status_code == 200
        assert "not an approver" in slack.wait_for("chat.postEphemeral")[-1]["arguments"]["text"]
    elif case == "other workspace":
        assert click(slack_gate, "scopegate_approve", request_id, team="T0OTHER").status_code == 200
    elif case == "decided":
        slack_gate.cli("requests", "deny", request_id)
        expected_state = "denied"
        assert click(slack_gate, "scopegate_approve", request_id).status_code == 200
        assert "already denied" in slack.wait_for("chat.postEphemeral")[-1]["arguments"]["text"]
    elif case == "malformed":
        # Unreadable: 400. Readable but not a ScopeGate decision: acknowledged and ignored.
        for bad, expected in [
            ("payload=%7Bnot%20json", 400),
            ("nothing=here", 400),
            ("payload=%7B%22type%22%3A%22block_actions%22%7D", 200),
        ]:
            assert requests.post(endpoint, data=bad, headers=sign(bad), timeout=10).status_code == expected
    assert state_of(slack_gate, request_id) == expected_state
    assert idp.received("/o/authorize/") == []


def test_a_slack_outage_loses_nothing_and_the_message_is_posted_once(slack_gate, idp, slack, callback_server):
    slack.fail("chat.postMessage", 500, ("429", 1), 503)
    client, verifier, url, _ = start(slack_gate, callback_server, "openid orders:read")
    browser = BrowserSession(slack_gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    request_id = slack_gate.only_pending_id()
    report = json.loads(slack_gate.cli("requests", "show", request_id))
    assert report["state"] == "pending", "an outage never decides"
    slack.wait_for("chat.postMessage", count=4, timeout=20)
    time.sleep(1.5)
    assert len(slack.calls_to("chat.postMessage")) == 4, "three failed attempts, then exactly one post"
    notifications = json.loads(slack_gate.cli("requests", "show", request_id))["notifications"]
    assert [n["status"] for n in notifications] == ["delivered"]
    assert idp.received("/o/authorize/") == []
    assert click(slack_gate, "scopegate_approve", request_id).status_code == 200
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    assert "orders:read" in finish(slack_gate, client, verifier, callback)["scope"].split()


def test_a_permanent_slack_error_is_shown_by_requests_show(slack_gate, slack, callback_server):
    slack.fail("chat.postMessage", "channel_not_found")
    _, _, url, _ = start(slack_gate, callback_server, "openid orders:read")
    kind, _ = BrowserSession(slack_gate, callback_server).go(url)
    assert kind == "page"
    request_id = slack_gate.only_pending_id()
    deadline = time.time() + 10
    while time.time() < deadline:
        notifications = json.loads(slack_gate.cli("requests", "show", request_id))["notifications"]
        if notifications and notifications[0]["status"] == "failed":
            break
        time.sleep(0.2)
    assert notifications[0]["status"] == "failed" and notifications[0]["error"] == "channel_not_found"
    assert len(slack.calls_to("chat.postMessage")) == 1, "a permanent error is not retried"


def test_a_restart_resumes_the_outbox_and_posts_once(slack_gate, idp, slack, callback_server):
    slack.fail("chat.postMessage", *([503] * 50))
    client, verifier, url, _ = start(slack_gate, callback_server, "openid orders:read")
    browser = BrowserSession(slack_gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    request_id = slack_gate.only_pending_id()
    slack.wait_for("chat.postMessage", count=2)
    slack_gate.stop()
    with slack.lock:
        slack.failures.clear()
    attempts_before = len(slack.calls_to("chat.postMessage"))
    slack_gate.start()
    slack.wait_for("chat.postMessage", count=attempts_before + 1, timeout=20)
    time.sleep(1.0)
    assert len(slack.calls_to("chat.postMessage")) == attempts_before + 1, "posted once after the restart"
    assert [n["status"] for n in json.loads(slack_gate.cli("requests", "show", request_id))["notifications"]] == ["delivered"]
    assert click(slack_gate, "scopegate_approve", request_id).status_code == 200
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    assert "orders:read" in finish(slack_gate, client, verifier, callback)["scope"].split()


def test_a_critical_request_needs_two_approvers_and_each_counts_once(idp, callback_server, tmp_path, slack):
    extra = f"""
tiers:
  - name: low
  - name: elevated
  - name: critical
    quorum: 2
routes:
  - name: critical
    match:
      tiers: [critical]
    channel: C0CRITICAL
    approvers:
      groups: [S0SECURITY]
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
default_route: everyone
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra + slack_config(slack), env=SLACK_ENV)
    gate.start()
    idp.reset()
    try:
        client, verifier, url, _ = start(gate, callback_server, "openid orders:write")
        browser = BrowserSession(gate, callback_server)
        kind, page = browser.go(url)
        assert kind == "page"
        request_id = gate.only_pending_id()
        slack.wait_for("chat.postMessage")
        assert click(gate, "scopegate_approve", request_id, user="U0BOB").status_code == 200
        assert state_of(gate, request_id) == "pending", "one of two approvals decides nothing"
        kind, waiting = browser.go(page.url)
        assert kind == "page" and "It needs 2 approvers to agree; 1 have so far." in waiting.text
        assert idp.received("/o/authorize/") == []
        slack.wait_for("chat.update", where=lambda call: "1 of 2 approvals" in blocks(call))
        assert "Your vote is counted" in slack.wait_for("chat.postEphemeral")[-1]["arguments"]["text"]
        # Bob again: the same person counts once.
        assert click(gate, "scopegate_approve", request_id, user="U0BOB").status_code == 200
        assert state_of(gate, request_id) == "pending"
        assert "already voted" in slack.wait_for("chat.postEphemeral", where=lambda c: "already" in c["arguments"]["text"])[-1]["arguments"]["text"]
        # Carol's is the last vote needed: it decides.
        assert click(gate, "scopegate_approve", request_id, user="U0CAROL").status_code == 200
        shown = json.loads(gate.cli("requests", "show", request_id))
        assert shown["state"] == "approved" and shown["decided_by"] == f"slack:{fake_slack.TEAM_ID}/U0CAROL"
        assert [v["voter"] for v in shown["votes"]] == [f"slack:{fake_slack.TEAM_ID}/U0BOB", f"slack:{fake_slack.TEAM_ID}/U0CAROL"]
        kind, callback = browser.go(page.url)
        assert kind == "callback"
        assert "orders:write" in finish(gate, client, verifier, callback)["scope"].split()
        slack.wait_for("chat.update", where=lambda call: "Approved" in blocks(call) and "scopegate_approve" not in blocks(call))
    finally:
        gate.stop()


def test_an_unanswered_critical_request_is_escalated_to_its_next_route(idp, callback_server, tmp_path, slack):
    extra = f"""
tiers:
  - name: low
  - name: elevated
  - name: critical
    escalate_after: 2s
    escalate_to: leads
routes:
  - name: critical
    match:
      tiers: [critical]
    channel: C0CRITICAL
    approvers:
      groups: [S0SECURITY]
  - name: leads
    match:
      clients: [e2e-consent]
    channel: C0LEADS
    approvers:
      users: [U0DAVE]
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
default_route: everyone
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra + slack_config(slack), env=SLACK_ENV)
    gate.start()
    idp.reset()
    try:
        _, _, url, _ = start(gate, callback_server, "openid orders:write")
        browser = BrowserSession(gate, callback_server)
        kind, page = browser.go(url)
        assert kind == "page"
        request_id = gate.only_pending_id()
        first = slack.wait_for("chat.postMessage")
        assert [c["arguments"]["channel"] for c in first] == ["C0CRITICAL"]
        told = page.text
        assert "The approvers of the critical route were asked (Slack)." in told
        assert "the approvers of the leads route are asked too" in told, "the requester is told when it escalates"
        # Before the escalation, the next route's approver decides nothing.
        assert click(gate, "scopegate_approve", request_id, user="U0DAVE").status_code == 200
        assert state_of(gate, request_id) == "pending"
        escalated = slack.wait_for("chat.postMessage", where=lambda c: c["arguments"]["channel"] == "C0LEADS", timeout=10)
        assert request_id in blocks(escalated[0]) and "Escalated unanswered to route leads" in blocks(escalated[0])
        slack.wait_for("chat.update", where=lambda c: c["arguments"]["channel"] == "C0CRITICAL" and "Escalated" in blocks(c))
        assert json.loads(gate.cli("requests", "show", request_id))["state"] == "pending", "a timeout never approves"
        assert "so the approvers of the leads route were asked too (Slack)" in browser.go(page.url)[1].text
        assert click(gate, "scopegate_approve", request_id, user="U0DAVE").status_code == 200
        assert state_of(gate, request_id) == "approved"
        assert browser.go(page.url)[0] == "callback"
        # A restart neither forgets nor repeats the escalation.
        gate.stop()
        gate.start()
        time.sleep(1.5)
        assert len([c for c in slack.calls_to("chat.postMessage") if c["arguments"]["channel"] == "C0LEADS"]) == 1
    finally:
        gate.stop()


def test_a_grant_for_a_chosen_few_seconds_expires_and_the_app_is_asked_again(idp, callback_server, tmp_path, slack):
    extra = """
tiers:
  - name: low
  - name: elevated
    grant_lifetime: 30d
    grant_durations: [3s, 1d]
  - name: critical
routes:
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
default_route: everyone
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra + slack_config(slack), env=SLACK_ENV)
    gate.start()
    idp.reset()
    try:
        client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
        browser = BrowserSession(gate, callback_server)
        kind, page = browser.go(url)
        assert kind == "page"
        request_id = gate.only_pending_id()
        posted = slack.wait_for("chat.postMessage")[0]
        menu = next(e for block in posted["arguments"]["blocks"] if block["type"] == "actions" for e in block["elements"]
                    if e["type"] == "static_select")
        assert [o["value"] for o in menu["options"]] == ["3s", "1d"] and menu["initial_option"]["value"] == "3s"
        assert click(gate, "scopegate_approve", request_id, duration="3s").status_code == 200
        assert state_of(gate, request_id) == "approved"
        kind, callback = browser.go(page.url)
        assert kind == "callback"
        assert "orders:read" in finish(gate, client, verifier, callback)["scope"].split()
        # Within the three seconds the grant stands; after them the app is asked again.
        _, _, url, _ = start(gate, callback_server, "openid orders:read")
        assert BrowserSession(gate, callback_server).go(url)[0] == "callback"
        time.sleep(3.5)
        _, _, url, _ = start(gate, callback_server, "openid orders:read")
        assert BrowserSession(gate, callback_server).go(url)[0] == "page", "the grant lapsed: asked again"
        assert len(gate.pending()) == 1
    finally:
        gate.stop()


def test_an_approver_who_unticks_a_scope_releases_the_request_without_it_and_the_token_lacks_it(
        idp, callback_server, tmp_path, slack):
    extra = """
routes:
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
default_route: everyone
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra + slack_config(slack), env=SLACK_ENV)
    gate.start()
    idp.reset()
    try:
        client, verifier, url, _ = start(gate, callback_server, "openid orders:read orders:write")
        browser = BrowserSession(gate, callback_server)
        kind, page = browser.go(url)
        assert kind == "page"
        request_id = gate.only_pending_id()
        posted = slack.wait_for("chat.postMessage")[0]
        boxes = next(e for block in posted["arguments"]["blocks"] if block.get("block_id") == "scopegate_scopes"
                     for e in block["elements"])
        assert boxes["type"] == "checkboxes"
        assert [o["value"] for o in boxes["options"]] == ["orders:read", "orders:write"]
        assert boxes["initial_options"] == boxes["options"], "every scope starts ticked"
        # Unticking everything approves nothing.
        assert click(gate, "scopegate_approve", request_id, ticked=[]).status_code == 200
        assert state_of(gate, request_id) == "pending"
        assert click(gate, "scopegate_approve", request_id, ticked=["orders:read"]).status_code == 200
        report = json.loads(gate.cli("requests", "show", request_id))
        assert report["state"] == "approved" and report["approved_scopes"] == ["orders:read"]
        grants = gate.cli("grants", "list")
        assert "orders:read" in grants and "orders:write" not in grants
        kind, callback = browser.go(page.url)
        assert kind == "callback"
        token = finish(gate, client, verifier, callback)
        assert set(token["scope"].split()) == {"openid", "orders:read"}, "the IdP granted only what was approved"
        updated = slack.wait_for("chat.update", where=lambda c: "Approved" in blocks(c))[-1]
        assert "only `orders:read`; not `orders:write`" in blocks(updated)
        # The scope left out is asked about again, on its own, the next time the app asks for it.
        _, _, url, _ = start(gate, callback_server, "openid orders:read orders:write")
        assert BrowserSession(gate, callback_server).go(url)[0] == "page"
        again = gate.pending()
        assert len(again) == 1 and again[0]["scopes"] == ["orders:write"] and again[0]["already_granted"] == ["orders:read"]
    finally:
        gate.stop()


def test_the_approvers_of_an_unanswered_request_are_reminded_once_in_its_thread(idp, callback_server, tmp_path, slack):
    extra = """
tiers:
  - name: low
  - name: elevated
    remind_after: 1s
  - name: critical
routes:
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
default_route: everyone
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra + slack_config(slack), env=SLACK_ENV)
    gate.start()
    idp.reset()
    try:
        _, _, url, _ = start(gate, callback_server, "openid orders:read")
        kind, _ = BrowserSession(gate, callback_server).go(url)
        assert kind == "page"
        request_id = gate.only_pending_id()
        posted = slack.wait_for("chat.postMessage")[0]
        ts = "1700000000.000002"
        reminder = slack.wait_for("chat.postMessage", where=lambda c: c["arguments"].get("thread_ts") == ts, timeout=10)[0]
        assert reminder["arguments"]["channel"] == "C0APPROVALS" and posted["arguments"]["channel"] == "C0APPROVALS"
        assert "Reminder: E2E App has waited" in reminder["arguments"]["text"] and request_id in reminder["arguments"]["text"]
        assert state_of(gate, request_id) == "pending", "a reminder decides nothing"
        gate.stop()
        gate.start()
        time.sleep(1.5)
        assert len([c for c in slack.calls_to("chat.postMessage") if c["arguments"].get("thread_ts")]) == 1, "once, restarts included"
    finally:
        gate.stop()


def test_the_requester_signs_in_first_and_cannot_approve_their_own_request(idp, callback_server, tmp_path, slack):
    """approvals.identify_requesters: the waiting page signs the requester in at django-oauth-toolkit
    (name, verified email, groups in the ID token), the message shows who asks, and the same person
    clicking Approve in Slack (the same address) changes nothing; another approver decides."""
    import conftest
    from test_audit import audit_keys
    extra = f"""
audit:
  keys: {audit_keys(tmp_path)}
routes:
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE, U0BOB]
default_route: everyone
"""
    gate = conftest.sign_in_gate(
        idp, callback_server, tmp_path, extra + slack_config(slack), env=SLACK_ENV, scopes="[openid, profile]",
        approvals="  identify_requesters: true")
    gate.start()
    idp.reset()
    try:
        client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
        # Held: an approval before the requester signed in is refused.
        requester = BrowserSession(gate, callback_server)
        first = requester.session.get(url, allow_redirects=False, timeout=10)
        assert first.status_code == 303 and "/_scopegate/holds/" in first.headers["Location"]
        request_id = gate.only_pending_id()
        slack.wait_for("chat.postMessage")
        assert click(gate, "scopegate_approve", request_id, user="U0BOB").status_code == 200
        assert "has not signed in yet" in slack.wait_for("chat.postEphemeral")[-1]["arguments"]["text"]
        assert state_of(gate, request_id) == "pending"
        # The waiting page sends the requester to sign in at the IdP, then shows itself.
        kind, page = requester.go(gate.url + first.headers["Location"])
        assert kind == "page" and "/_scopegate/holds/" in page.url
        assert "Alice Liddell, alice@example.com" in page.text
        updated = slack.wait_for("chat.update", where=lambda c: "alice@example.com" in blocks(c))[-1]
        assert "*Requester*" in blocks(updated) and "groups: sales" in blocks(updated)
        # Alice approving her own request from Slack (her Slack address is the same) changes nothing.
        assert click(gate, "scopegate_approve", request_id, user="U0ALICE").status_code == 200
        assert "you asked for this request yourself" in slack.wait_for(
            "chat.postEphemeral", where=lambda c: "yourself" in c["arguments"]["text"])[-1]["arguments"]["text"]
        assert state_of(gate, request_id) == "pending"
        assert click(gate, "scopegate_approve", request_id, user="U0BOB").status_code == 200
        assert state_of(gate, request_id) == "approved"
        # The requester is told in Slack too, directly (found by her verified address).
        told = slack.wait_for("chat.postMessage", where=lambda c: c["arguments"]["channel"] == "U0ALICE")[0]["arguments"]["text"]
        assert "Your request for E2E App to have orders:read" in told and "was approved by" in told
        kind, callback = requester.go(page.url)
        assert kind == "callback"
        assert "orders:read" in finish(gate, client, verifier, callback)["scope"].split()
    finally:
        gate.stop()


def test_the_apps_owner_is_told_of_a_standing_grant_and_of_its_revocation(idp, callback_server, tmp_path, slack):
    """clients[].owner_notify: the owner gets a Slack message when an approval grants their app scopes
    and when a grant is revoked (here from the command line, another process), read from the audit log."""
    from conftest import CLIENT_ID
    from test_audit import audit_keys
    keys = audit_keys(tmp_path)
    extra = f"""
audit:
  keys: {keys}
routes:
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
default_route: everyone
"""
    clients = f"""  - id: {CLIENT_ID}
    name: E2E App
    owner: Olivia (sales engineering)
    owner_notify:
      slack: U0OLIVIA
    redirect_uris: ["{callback_server}"]"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra + slack_config(slack), env=SLACK_ENV, clients=clients)
    gate.start()
    idp.reset()
    try:
        _, _, url, _ = start(gate, callback_server, "openid orders:read")
        assert BrowserSession(gate, callback_server).go(url)[0] == "page"
        request_id = gate.only_pending_id()
        slack.wait_for("chat.postMessage")
        assert not [c for c in slack.calls_to("chat.postMessage") if c["arguments"]["channel"] == "U0OLIVIA"], \
            "a request alone grants nothing: the owner is not told"
        assert click(gate, "scopegate_approve", request_id).status_code == 200
        granted = slack.wait_for("chat.postMessage", where=lambda c: c["arguments"]["channel"] == "U0OLIVIA")[0]["arguments"]["text"]
        assert "E2E App (e2e-app) was granted orders:read" in granted and request_id in granted and "until " in granted
        gate.cli("grants", "revoke", CLIENT_ID, "orders:read", "--as", "ops")
        revoked = slack.wait_for(
            "chat.postMessage", where=lambda c: c["arguments"]["channel"] == "U0OLIVIA" and "revoked" in c["arguments"]["text"])
        assert "The grant of orders:read to E2E App (e2e-app) was revoked" in revoked[0]["arguments"]["text"]
        # A restart tells nobody twice.
        gate.stop()
        gate.start()
        time.sleep(1.5)
        assert len([c for c in slack.calls_to("chat.postMessage") if c["arguments"]["channel"] == "U0OLIVIA"]) == 2
    finally:
        gate.stop()
