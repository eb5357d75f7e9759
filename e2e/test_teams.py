"""Microsoft Teams approvals end to end: django-oauth-toolkit behind ScopeGate, Authlib as the client,
fakes of Microsoft's token endpoint, the Bot Framework's OpenID metadata and JWKS, and the Bot Connector
recording what ScopeGate posts; card actions arrive as `adaptiveCard/action` invokes signed with the
fake's RSA key, exactly as the Bot Connector sends them."""
import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

import fake_teams
from conftest import BrowserSession, Gate, free_port
from fake_teams import FakeTeams, invoke
from test_authorization_flow import finish, start
from test_metrics import SCRAPER, scrape

MESSAGES = "/_scopegate/teams/messages"
ALICE = str(uuid.uuid4())
BOB = str(uuid.uuid4())
MALLORY = str(uuid.uuid4())


def bot_config(teams):
    """The teams section of a ScopeGate that is the fake's bot."""
    return f"""
teams:
  app_id: {fake_teams.APP_ID}
  app_password_env: E2E_TEAMS_APP_PASSWORD
  tenant_id: {fake_teams.TENANT_ID}
  service_url: {teams.service_url}
  authority: {teams.authority}
  openid_metadata: {teams.metadata_url}"""


@pytest.fixture
def teams():
    fake = FakeTeams(free_port())
    yield fake
    fake.stop()


@pytest.fixture
def teams_gate(idp, callback_server, tmp_path, teams):
    extra = bot_config(teams) + f"""
routes:
  - name: critical
    match:
      tiers: [critical]
    teams:
      channel: "19:critical@thread.tacv2"
      approvers:
        users: [{BOB}]
  - name: everyone
    teams:
      channel: "19:approvals@thread.tacv2"
      approvers:
        users: [{ALICE.upper()}]
default_route: everyone
metrics:
  token_env: E2E_METRICS_TOKEN
"""
    env = {"E2E_TEAMS_APP_PASSWORD": fake_teams.APP_PASSWORD, "E2E_METRICS_TOKEN": SCRAPER}
    instance = Gate(idp, callback_server, tmp_path, extra=extra, env=env)
    instance.start()
    idp.reset()
    yield instance
    instance.stop()


def send(gate, teams, activity, token=None, authorization=None):
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if authorization is None and token is not False:
        authorization = "Bearer " + (token or teams.token())
    if authorization:
        headers["Authorization"] = authorization
    return requests.post(gate.url + MESSAGES, data=json.dumps(activity), headers=headers, timeout=10)


def click(gate, teams, verb, request_id, user=ALICE, **kwargs):
    return send(gate, teams, invoke(teams, verb, request_id, user, **kwargs))


def state_of(gate, request_id):
    return json.loads(gate.cli("requests", "show", request_id))["state"]


def card_of(call):
    activity = call["body"]["activity"] if call["name"] == "conversations.create" else call["body"]
    return json.dumps(activity["attachments"][0]["content"])


def held(gate, callback_server, scope):
    client, verifier, url, state = start(gate, callback_server, scope)
    browser = BrowserSession(gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    return client, verifier, browser, page, state, gate.only_pending_id()


def test_an_approval_in_teams_releases_the_browser_and_updates_the_card(teams_gate, idp, teams, callback_server):
    client, verifier, browser, page, _, request_id = held(teams_gate, callback_server, "openid orders:read")
    teams.wait_for("conversations.create")
    time.sleep(0.5)
    posts = teams.calls_to("conversations.create")
    assert len(posts) == 1, "one card, to the routed channel"
    post = posts[0]["body"]
    assert post["channelData"]["channel"]["id"] == "19:approvals@thread.tacv2"
    assert post["isGroup"] is True and post["tenantId"] == fake_teams.TENANT_ID
    assert request_id in card_of(posts[0]) and "orders:read" in card_of(posts[0]) and "E2E App" in card_of(posts[0])
    assert posts[0]["authorization"].startswith("Bearer e2e-connector-"), "a token from the client credentials grant"
    token_call = teams.calls_to("token")[0]["body"]
    assert token_call["grant_type"] == "client_credentials" and token_call["client_id"] == fake_teams.APP_ID
    assert idp.received("/o/authorize/") == []

    response = click(teams_gate, teams, "scopegate_approve", request_id)
    assert response.status_code == 200
    answer = response.json()
    assert answer["statusCode"] == 200 and answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Action.Execute" not in json.dumps(answer["value"]) and "Approved" in json.dumps(answer["value"])
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    assert "orders:read" in finish(teams_gate, client, verifier, callback)["scope"].split()
    assert json.loads(teams_gate.cli("requests", "show", request_id))["decided_by"] == f"teams:{fake_teams.TENANT_ID}/{ALICE}"
    update = teams.wait_for("activities.update", where=lambda call: "Approved" in card_of(call))[-1]
    conversation = posts[0]["body"]["channelData"]["channel"]["id"]
    assert update["path"].startswith("/teams/v3/conversations/" + requests.utils.quote(conversation, safe=""))
    assert update["path"].endswith("/activities/1700000000001"), "the posted card is updated, not a new one"
    assert len(teams.calls_to("conversations.create")) == 1


def test_deny_reaches_the_client_as_access_denied(teams_gate, idp, teams, callback_server):
    _, _, browser, page, state, request_id = held(teams_gate, callback_server, "openid orders:read")
    teams.wait_for("conversations.create")
    assert click(teams_gate, teams, "scopegate_deny", request_id).status_code == 200
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    params = parse_qs(urlparse(callback).query)
    assert params["error"] == ["access_denied"] and params["state"] == [state]
    teams.wait_for("activities.update", where=lambda call: "Denied" in card_of(call))
    assert idp.received("/o/authorize/") == []


def test_a_decision_made_elsewhere_updates_the_card(teams_gate, teams, callback_server):
    _, _, _, _, _, request_id = held(teams_gate, callback_server, "openid orders:read")
    teams.wait_for("conversations.create")
    teams_gate.cli("requests", "deny", request_id, "--as", "ops")
    update = teams.wait_for("activities.update", where=lambda call: "Denied" in card_of(call))[-1]
    assert "ops (command line)" in card_of(update)


def test_only_the_routes_approvers_in_the_tenant_decide(teams_gate, idp, teams, callback_server):
    _, _, _, _, _, request_id = held(teams_gate, callback_server, "openid orders:write")
    post = teams.wait_for("conversations.create")[0]
    assert post["body"]["channelData"]["channel"]["id"] == "19:critical@thread.tacv2"
    for user, tenant in [(ALICE, fake_teams.TENANT_ID), (MALLORY, fake_teams.TENANT_ID), (BOB, str(uuid.uuid4()))]:
        response = click(teams_gate, teams, "scopegate_approve", request_id, user=user, tenant=tenant)
        assert response.status_code == 200
        assert response.json()["type"] == "application/vnd.microsoft.error"
        assert "not an approver" in response.json()["value"]["message"]
        assert state_of(teams_gate, request_id) == "pending"
    assert teams.calls_to("activities.update") == [], "a refused click changes no card"
    response = click(teams_gate, teams, "scopegate_approve", request_id, user=BOB)
    assert response.json()["type"] == "application/vnd.microsoft.card.adaptive"
    assert state_of(teams_gate, request_id) == "approved"


def hs256_with_public_key(teams):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": fake_teams.KEY_ID}).encode()).rstrip(b"=")
    claims = json.loads(base64.urlsafe_b64decode(teams.token().split(".")[1] + "=="))
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    mac = hmac.new(teams.public_key_pem(), header + b"." + body, hashlib.sha256).digest()
    return (header + b"." + body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def unsigned(teams):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": fake_teams.KEY_ID}).encode()).rstrip(b"=").decode()
    return header + "." + teams.token().split(".")[1] + "."


FORGERIES = {
    "alg none": lambda t: {"token": unsigned(t)},
    "HS256 keyed with the public key": lambda t: {"token": hs256_with_public_key(t)},
    "unknown kid": lambda t: {"token": t.token(header={"alg": "RS256", "kid": "not-a-key"})},
    "another key": lambda t: {"token": t.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))},
    "wrong issuer": lambda t: {"token": t.token({"iss": "https://sts.windows.net/x/"})},
    "wrong audience": lambda t: {"token": t.token({"aud": str(uuid.uuid4())})},
    "expired": lambda t: {"token": t.token({"exp": int(time.time()) - 600, "nbf": int(time.time()) - 4000})},
    "serviceUrl mismatch": lambda t: {"token": t.token({"serviceurl": "https://evil.example/teams/"})},
    "missing header": lambda t: {"token": False},
    "not bearer": lambda t: {"authorization": "Basic " + base64.b64encode(b"a:b").decode()},
}


@pytest.mark.parametrize("case", list(FORGERIES))
def test_every_forged_activity_is_refused_401_and_changes_nothing(teams_gate, idp, teams, callback_server, case):
    _, _, browser, page, _, request_id = held(teams_gate, callback_server, "openid orders:read")
    teams.wait_for("conversations.create")
    response = send(teams_gate, teams, invoke(teams, "scopegate_approve", request_id, ALICE), **FORGERIES[case](teams))
    assert response.status_code == 401
    assert state_of(teams_gate, request_id) == "pending"
    kind, _ = browser.go(page.url)
    assert kind == "page", "the browser still waits"
    assert idp.received("/o/authorize/") == []


def test_a_replayed_invoke_has_no_second_effect(teams_gate, idp, teams, callback_server):
    _, _, _, _, _, request_id = held(teams_gate, callback_server, "openid orders:read")
    teams.wait_for("conversations.create")
    activity = invoke(teams, "scopegate_approve_once", request_id, ALICE)
    first = send(teams_gate, teams, activity)
    second = send(teams_gate, teams, activity)
    assert first.status_code == 200 and second.status_code == 200
    assert state_of(teams_gate, request_id) == "approved_once"
    samples = scrape(teams_gate)
    assert samples[("scopegate_chat_interactions_total", (("outcome", "decided"), ("platform", "teams")))] == 1
    assert samples[("scopegate_chat_interactions_total", (("outcome", "replay"), ("platform", "teams")))] == 1
    audit = json.loads(teams_gate.cli("requests", "show", request_id))
    assert audit["decided_by"] == f"teams:{fake_teams.TENANT_ID}/{ALICE}"


def test_a_connector_outage_loses_nothing_and_the_card_is_posted_once(teams_gate, idp, teams, callback_server):
    teams.fail("conversations.create", 503, ("429", 1))
    teams.fail("token", 500)
    _, _, browser, page, _, request_id = held(teams_gate, callback_server, "openid orders:read")
    posted = teams.wait_for("conversations.create", where=lambda call: True, timeout=15)
    deadline = time.time() + 15
    while time.time() < deadline and len(teams.calls_to("conversations.create")) < 3:
        time.sleep(0.1)
    time.sleep(1)
    assert len(teams.calls_to("conversations.create")) == 3, "two failures, then one post: none twice"
    assert click(teams_gate, teams, "scopegate_approve", request_id).status_code == 200
    kind, _ = browser.go(page.url)
    assert kind == "callback"
    assert posted


def test_a_wrong_bot_secret_holds_the_card_until_it_is_fixed(idp, callback_server, tmp_path, teams):
    extra = bot_config(teams) + f"""
routes:
  - name: everyone
    teams:
      channel: "19:approvals@thread.tacv2"
      approvers:
        users: [{ALICE}]
default_route: everyone
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra, env={"E2E_TEAMS_APP_PASSWORD": "wrong"})
    gate.start()
    try:
        held(gate, callback_server, "openid orders:read")
        teams.wait_for("token")
        time.sleep(1)
        assert teams.calls_to("conversations.create") == [], "nothing is posted without a token"
        shown = json.loads(gate.cli("requests", "show", gate.only_pending_id()))
        assert "invalid_client" in json.dumps(shown)
    finally:
        gate.stop()
    gate.env["E2E_TEAMS_APP_PASSWORD"] = fake_teams.APP_PASSWORD
    gate.start()
    try:
        teams.wait_for("conversations.create", timeout=20)
    finally:
        gate.stop()


def test_the_shipped_teams_app_package_is_complete():
    """What an admin zips and uploads: the manifest's required members, a bot that is not
    notification-only (Action.Execute needs invokes), and icons of the sizes Teams requires."""
    import pathlib
    import struct

    folder = pathlib.Path(__file__).resolve().parent.parent / "proxy-config" / "teams"
    manifest = json.loads((folder / "manifest.json").read_text())
    for member in ["manifestVersion", "version", "id", "developer", "name", "description", "icons", "accentColor"]:
        assert member in manifest, member
    bot = manifest["bots"][0]
    assert bot["botId"] == manifest["id"] and "team" in bot["scopes"] and bot["isNotificationOnly"] is False
    for name, size in [("color", 192), ("outline", 32)]:
        data = (folder / manifest["icons"][name]).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (size, size)


def test_a_route_to_a_group_chat_posts_into_the_chat_and_updates_the_card(idp, callback_server, tmp_path, teams):
    extra = bot_config(teams) + f"""
routes:
  - name: approvers-chat
    teams:
      channel: "19:approvers@thread.v2"
      approvers:
        users: [{ALICE}]
default_route: approvers-chat
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra, env={"E2E_TEAMS_APP_PASSWORD": fake_teams.APP_PASSWORD})
    gate.start()
    try:
        _, _, browser, page, _, request_id = held(gate, callback_server, "openid orders:read")
        sent = teams.wait_for("activities.send")[0]
        assert sent["path"] == "/teams/v3/conversations/" + requests.utils.quote("19:approvers@thread.v2", safe="") + "/activities"
        assert request_id in card_of(sent)
        assert teams.calls_to("conversations.create") == [], "a chat gets the card itself, not a new thread"
        assert click(gate, teams, "scopegate_approve", request_id).status_code == 200
        assert browser.go(page.url)[0] == "callback"
        update = teams.wait_for("activities.update", where=lambda call: "Approved" in card_of(call))[-1]
        assert update["path"].endswith("/activities/1700000000001")
    finally:
        gate.stop()


def test_approvers_in_teams_are_reminded_in_the_cards_thread(idp, callback_server, tmp_path, teams):
    extra = bot_config(teams) + f"""
tiers:
  - name: low
  - name: elevated
    remind_after: 1s
  - name: critical
routes:
  - name: everyone
    teams:
      channel: "19:approvals@thread.tacv2"
      approvers:
        users: [{ALICE}]
default_route: everyone
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra, env={"E2E_TEAMS_APP_PASSWORD": fake_teams.APP_PASSWORD})
    gate.start()
    try:
        _, _, _, _, _, request_id = held(gate, callback_server, "openid orders:read")
        teams.wait_for("conversations.create")
        thread = "19:approvals@thread.tacv2;messageid=1700000000001"
        reminder = teams.wait_for("activities.send", timeout=10)[0]
        assert reminder["path"] == "/teams/v3/conversations/" + requests.utils.quote(thread, safe="") + "/activities"
        assert "Reminder: E2E App has waited" in json.dumps(reminder["body"]) and request_id in json.dumps(reminder["body"])
    finally:
        gate.stop()


def test_a_teams_approver_who_is_the_requester_cannot_approve(idp, callback_server, tmp_path, teams):
    """With requesters identified, the approver's directory address (Bot Connector members API) is
    compared with the requester's verified one: the same person's click decides nothing."""
    import conftest
    teams.members[ALICE] = "alice@example.com"
    teams.members[BOB] = "bob@example.com"
    extra = bot_config(teams) + f"""
routes:
  - name: everyone
    teams:
      channel: "19:approvals@thread.tacv2"
      approvers:
        users: [{ALICE}, {BOB}]
default_route: everyone
"""
    gate = conftest.sign_in_gate(
        idp, callback_server, tmp_path, extra, env={"E2E_TEAMS_APP_PASSWORD": fake_teams.APP_PASSWORD}, scopes="[openid, profile]",
        approvals="  identify_requesters: true")
    gate.start()
    idp.reset()
    try:
        client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
        requester = BrowserSession(gate, callback_server)
        kind, page = requester.go(url)
        assert kind == "page" and "alice@example.com" in page.text
        request_id = gate.only_pending_id()
        refused = click(gate, teams, "scopegate_approve", request_id, user=ALICE).json()
        assert refused["statusCode"] == 403 and "yourself" in refused["value"]["message"]
        assert [c for c in teams.calls if c["name"] == "members.get"], "the approver's address came from the directory"
        assert state_of(gate, request_id) == "pending"
        assert click(gate, teams, "scopegate_approve", request_id, user=BOB).json()["statusCode"] == 200
        assert state_of(gate, request_id) == "approved"
        kind, callback = requester.go(page.url)
        assert kind == "callback"
    finally:
        gate.stop()


def test_a_teams_approver_chooses_some_of_the_scopes_and_the_token_has_only_those(teams_gate, idp, teams, callback_server):
    client, verifier, browser, page, _, request_id = held(teams_gate, callback_server, "openid orders:read orders:write")
    created = teams.wait_for("conversations.create")[0]
    card = json.loads(card_of(created))
    choice = next(e for e in card["body"] if e.get("id") == "scopes")
    assert choice["isMultiSelect"] and choice["value"] == "orders:read,orders:write"
    # A choice of nothing changes nothing (the card marks the input required; a client may not).
    assert send(teams_gate, teams, invoke(teams, "scopegate_approve", request_id, BOB, inputs={"scopes": ""})).json()["statusCode"] == 403
    answer = send(teams_gate, teams, invoke(teams, "scopegate_approve", request_id, BOB, inputs={"scopes": "orders:read"})).json()
    assert answer["statusCode"] == 200 and "only orders:read; not orders:write" in json.dumps(answer["value"])
    assert json.loads(teams_gate.cli("requests", "show", request_id))["approved_scopes"] == ["orders:read"]
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    assert set(finish(teams_gate, client, verifier, callback)["scope"].split()) == {"openid", "orders:read"}
