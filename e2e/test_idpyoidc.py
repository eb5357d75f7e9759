"""ScopeGate in front of idpyoidc's OpenID Provider (PyPI, 5.x) as it ships, behind the suite's small WSGI
layer (e2e/idpyoidc_op/op.py): no consent screen, PAR native at its own path, request objects by value
(`alg: none` accepted, read alone per RFC 9101), a client-credentials grant that issues every scope the
client is allowed whatever it asked for, and the first of a repeated parameter winning.

The OP's issuer is ScopeGate's public URL, as an operator sets it: it builds its discovery document and
its `iss` from that, not from forwarded headers."""
import base64
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from conftest import SERVICE, BrowserSession, gate_in_front_of

OP = Path(__file__).resolve().parent / "idpyoidc_op" / "op.py"
APP, SERVICE_CLIENT, REPORTER = "idpy-app", "idpy-service", "idpy-reporter"
SECRET = SERVICE[1]


@pytest.fixture
def setup(callback_server, tmp_path):
    """idpyoidc and ScopeGate in front of it, each test with its own of both."""
    gate, idp, op = gate_in_front_of(
        lambda port, gate_url: [sys.executable, str(OP), str(port), gate_url, str(tmp_path / "idpyoidc.jsonl"), callback_server, SECRET],
        tmp_path, "idpyoidc",
        [(APP, "idpyoidc App", [callback_server]), (SERVICE_CLIENT, "idpyoidc Service", []), (REPORTER, "idpyoidc Reporter", [])],
        tmp_path / "idpyoidc.jsonl", cwd=OP.parent)
    yield gate, idp
    gate.stop()
    op.terminate()
    op.wait(timeout=10)


def start(gate, callback, scope, **extra):
    client = OAuth2Session(APP, SECRET, redirect_uri=callback, scope=scope, code_challenge_method="S256")
    verifier = generate_token(48)
    url, state = client.create_authorization_url(gate.url + "/authorization", code_verifier=verifier, **extra)
    return client, verifier, url, state


def token(gate, client, verifier, callback_url):
    return client.fetch_token(gate.url + "/token", authorization_response=callback_url, code_verifier=verifier)


def unsigned(claims):
    encode = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return encode({"alg": "none"}) + "." + encode(claims) + "."


def test_discovery_and_approved_scopes_yield_tokens(setup, callback_server):
    gate, idp = setup
    document = requests.get(gate.url + "/.well-known/openid-configuration", timeout=10).json()
    assert document["issuer"] == gate.url
    assert document["pushed_authorization_request_endpoint"] == gate.url + "/pushed_authorization"
    client, verifier, url, state = start(gate, callback_server, "openid profile")
    kind, callback = BrowserSession(gate, callback_server).go(url)
    assert kind == "callback"
    params = parse_qs(urlparse(callback).query)
    assert params["state"] == [state] and params["iss"] == [gate.url]
    issued = token(gate, client, verifier, callback)
    assert set(issued["scope"].split()) == {"openid", "profile"}
    assert "id_token" in issued


def test_an_unapproved_scope_is_held_approved_and_the_same_browser_completes(setup, callback_server):
    gate, idp = setup
    client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
    browser = BrowserSession(gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page" and "Waiting for approval" in page.text
    assert idp.received("/authorization") == []
    gate.cli("requests", "approve", gate.only_pending_id())
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    assert "orders:read" in token(gate, client, verifier, callback)["scope"].split()


def test_a_denial_reaches_the_client(setup, callback_server):
    gate, idp = setup
    _, _, url, state = start(gate, callback_server, "openid orders:read")
    browser = BrowserSession(gate, callback_server)
    kind, page = browser.go(url)
    gate.cli("requests", "deny", gate.only_pending_id(), "--reason", "no")
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    params = parse_qs(urlparse(callback).query)
    assert params["error"] == ["access_denied"] and params["state"] == [state]
    assert idp.received("/authorization") == []


def test_a_second_scope_the_idp_would_not_read_is_still_gated(setup, callback_server):
    # idpyoidc reads the first `scope`; an IdP reading the last would grant orders:write. Both are gated.
    gate, idp = setup
    _, _, url, _ = start(gate, callback_server, "openid")
    kind, page = BrowserSession(gate, callback_server).go(url + "&scope=orders%3Awrite")
    assert kind == "page" and "Waiting for approval" in page.text
    assert idp.received("/authorization") == []


def test_client_credentials_cannot_obtain_an_unapproved_scope(setup, callback_server):
    gate, idp = setup
    ask = lambda client, scope: requests.post(
        gate.url + "/token", data={"grant_type": "client_credentials", "scope": scope}, auth=(client, SECRET), timeout=10)
    refused = ask(SERVICE_CLIENT, "orders:read")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    assert idp.received("/token") == []
    gate.cli("requests", "approve", gate.only_pending_id())
    # Approved for orders:read, but idpyoidc issues every scope the client is allowed (orders:write too):
    # the second gate withholds the token.
    withheld = ask(SERVICE_CLIENT, "orders:read")
    assert withheld.status_code == 400 and withheld.json()["error"] == "invalid_scope"
    assert "access_token" not in withheld.text
    assert len(idp.received("/token")) == 1
    # A client allowed only what was approved gets its token.
    assert ask(REPORTER, "orders:read").status_code == 400
    gate.cli("requests", "approve", gate.only_pending_id())
    issued = OAuth2Session(REPORTER, SECRET, scope="orders:read").fetch_token(gate.url + "/token", grant_type="client_credentials")
    assert issued["scope"] == "orders:read"


def test_pushed_authorization_requests(setup, callback_server):
    gate, idp = setup
    verifier = generate_token(48)
    pushed = {
        "response_type": "code", "client_id": APP, "redirect_uri": callback_server, "scope": "openid orders:read",
        "state": "par-state", "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    }
    held = requests.post(gate.url + "/pushed_authorization", data=pushed, auth=(APP, SECRET), timeout=10)
    assert held.status_code == 400 and held.json()["error"] == "invalid_scope"
    assert idp.received("/pushed_authorization") == []
    gate.cli("requests", "approve", gate.only_pending_id())
    answer = requests.post(gate.url + "/pushed_authorization", data=pushed, auth=(APP, SECRET), timeout=10)
    assert answer.status_code == 200, answer.text
    request_uri = answer.json()["request_uri"]
    # idpyoidc wants response_type, scope and redirect_uri beside request_uri: copies of the pushed
    # values pass, another value does not.
    forged = BrowserSession(gate, callback_server).session.get(
        gate.url + "/authorization?" + urlencode({"client_id": APP, "request_uri": request_uri, "response_type": "code", "scope": "admin:org"}),
        allow_redirects=False, timeout=10)
    assert forged.status_code == 400
    kind, callback = BrowserSession(gate, callback_server).go(
        gate.url + "/authorization?" + urlencode(
            {"client_id": APP, "request_uri": request_uri, "response_type": "code", "scope": "openid orders:read",
             "redirect_uri": callback_server}))
    assert kind == "callback", (callback.status_code, callback.text[:2000])
    assert parse_qs(urlparse(callback).query)["state"] == ["par-state"]
    client = OAuth2Session(APP, SECRET, redirect_uri=callback_server)
    issued = client.fetch_token(gate.url + "/token", authorization_response=callback, code_verifier=verifier)
    assert "orders:read" in issued["scope"].split()
    assert [e for e in idp.received("/authorization") if "admin" in e["query"]] == []


def test_request_objects_by_value(setup, callback_server):
    gate, idp = setup
    verifier = generate_token(48)
    inner = {
        "client_id": APP, "response_type": "code", "redirect_uri": callback_server, "scope": "openid orders:write",
        "state": "ro-state", "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    }
    # idpyoidc reads the request object alone: its scope (orders:write) is what would be granted.
    url = gate.url + "/authorization?" + urlencode({
        "client_id": APP, "response_type": "code", "redirect_uri": callback_server, "scope": "openid", "request": unsigned(inner),
    })
    browser = BrowserSession(gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page" and "orders:write" in page.text
    assert idp.received("/authorization") == []
    gate.cli("requests", "approve", gate.only_pending_id())
    kind, callback = browser.go(page.url)
    assert kind == "callback", (callback.status_code, callback.text)
    client = OAuth2Session(APP, SECRET, redirect_uri=callback_server)
    issued = client.fetch_token(gate.url + "/token", authorization_response=callback, code_verifier=verifier)
    assert "orders:write" in issued["scope"].split()
