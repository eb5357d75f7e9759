"""Authorization code + PKCE through ScopeGate in front of django-oauth-toolkit, driven by Authlib."""
from urllib.parse import parse_qs, urlparse

import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from conftest import CLIENT_ID, BrowserSession


def start(gate, redirect_uri, scope, **extra):
    client = OAuth2Session(
        CLIENT_ID, redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256", token_endpoint_auth_method="none"
    )
    verifier = generate_token(48)
    url, state = client.create_authorization_url(gate.url + "/o/authorize/", code_verifier=verifier, **extra)
    return client, verifier, url, state


def finish(gate, client, verifier, callback_url):
    return client.fetch_token(gate.url + "/o/token/", authorization_response=callback_url, code_verifier=verifier)


def test_discovery_points_at_scopegate(gate):
    document = BrowserSession(gate, "x").session.get(gate.url + "/o/.well-known/openid-configuration").json()
    assert document["authorization_endpoint"] == gate.url + "/o/authorize/"
    assert document["token_endpoint"] == gate.url + "/o/token/"


def test_approved_scopes_go_straight_through(gate, idp, callback_server):
    client, verifier, url, _ = start(gate, callback_server, "openid profile")
    kind, callback = BrowserSession(gate, callback_server).go(url)
    assert kind == "callback"
    token = finish(gate, client, verifier, callback)
    assert set(token["scope"].split()) == {"openid", "profile"}
    assert "id_token" in token
    assert gate.pending() == []
    forwarded = idp.received("/o/authorize/")
    assert forwarded and all("profile" in entry["query"] for entry in forwarded)


def test_unapproved_scope_is_held_then_approved_from_the_command_line(gate, idp, callback_server):
    client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
    browser = BrowserSession(gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page" and "Waiting for approval" in page.text
    assert idp.received("/o/authorize/") == [], "the IdP must receive nothing while the request is held"

    request_id = gate.only_pending_id()
    gate.cli("requests", "approve", request_id, "--as", "e2e-approver")

    kind, callback = browser.go(page.url)
    assert kind == "callback"
    token = finish(gate, client, verifier, callback)
    assert "orders:read" in token["scope"].split()
    report = gate.cli("requests", "show", request_id)
    assert '"decided_by" : "cli:e2e-approver"' in report


def test_a_denial_reaches_the_client_as_access_denied_with_its_state(gate, idp, callback_server):
    _, _, url, state = start(gate, callback_server, "openid orders:read")
    browser = BrowserSession(gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    gate.cli("requests", "deny", gate.only_pending_id(), "--reason", "not this quarter")
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    params = parse_qs(urlparse(callback).query)
    assert params["error"] == ["access_denied"]
    assert params["state"] == [state]
    assert "not this quarter" in params["error_description"][0]
    assert idp.received("/o/authorize/") == []


def test_policy_denial_never_reaches_the_idp(gate, idp, callback_server):
    _, _, url, state = start(gate, callback_server, "openid admin:org")
    kind, callback = BrowserSession(gate, callback_server).go(url)
    assert kind == "callback"
    params = parse_qs(urlparse(callback).query)
    assert params["error"] == ["access_denied"] and params["state"] == [state]
    assert idp.received("/o/authorize/") == []


def test_a_held_request_survives_a_restart(gate, idp, callback_server):
    client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
    browser = BrowserSession(gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    gate.stop()
    gate.start()
    gate.cli("requests", "approve", gate.only_pending_id())
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    assert "orders:read" in finish(gate, client, verifier, callback)["scope"].split()


def test_approve_once_leaves_no_standing_grant(gate, idp, callback_server):
    client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
    browser = BrowserSession(gate, callback_server)
    _, page = browser.go(url)
    gate.cli("requests", "approve", gate.only_pending_id(), "--once")
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    assert "orders:read" in finish(gate, client, verifier, callback)["scope"].split()
    assert gate.cli("grants", "list").strip() == "no grants"
    _, _, again, _ = start(gate, callback_server, "openid orders:read")
    kind, page = BrowserSession(gate, callback_server).go(again)
    assert kind == "page" and "Waiting for approval" in page.text


@pytest.mark.parametrize(
    "suffix",
    [
        "&state=other",  # a second state, another value
        "&client_id=other",  # a second client_id
        "&nonce=%G1",  # malformed percent-encoding
        "&nonce=%E9",  # not UTF-8
        # Permissions ScopeGate cannot see: an encrypted request object, one with a member twice, a
        # request URI it never saw issued, authorization details that are not an array.
        "&request=eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
        "&request=eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCIsInNjb3BlIjoiYWRtaW46b3JnIn0.",
        "&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc",
        "&authorization_details=%7B%22type%22%3A%22payment%22%7D",
    ],
)
def test_malformed_requests_never_reach_the_idp(gate, idp, callback_server, suffix):
    _, _, url, _ = start(gate, callback_server, "openid")
    response = requests_raw_get(BrowserSession(gate, callback_server).session, url + suffix)
    assert response.status_code == 400
    assert idp.received("/o/authorize/") == []


def test_a_second_scope_parameter_is_gated_with_the_first(gate, idp, callback_server):
    # django-oauth-toolkit reads the last `scope` (Django's QueryDict); ScopeGate gates both.
    _, _, url, _ = start(gate, callback_server, "openid")
    response = requests_raw_get(BrowserSession(gate, callback_server).session, url + "&scope=orders%3Awrite")
    assert response.status_code == 303 and "/_scopegate/holds/" in response.headers["Location"]
    assert idp.received("/o/authorize/") == []
    assert gate.only_pending_id()


@pytest.mark.parametrize(
    "suffix, outcome",
    [
        # An unsigned request object whose scope a rule denies: the gate reads it.
        ("&request=eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCBhZG1pbjpvcmcifQ.", "error=access_denied"),
        # A rich authorization request type nobody approved: held.
        ("&authorization_details=%5B%7B%22type%22%3A%22payment%22%7D%5D", "/_scopegate/holds/"),
        # A resource nobody approved: held.
        ("&resource=https%3A%2F%2Fpayroll.example%2F", "/_scopegate/holds/"),
    ],
)
def test_permissions_beyond_scope_are_gated(gate, idp, callback_server, suffix, outcome):
    _, _, url, _ = start(gate, callback_server, "openid")
    response = requests_raw_get(BrowserSession(gate, callback_server).session, url + suffix)
    assert response.status_code == 303
    assert outcome in response.headers["Location"]
    assert idp.received("/o/authorize/") == []


@pytest.mark.parametrize("response_type", ["token", "id_token", "code+token", "code+id_token+token"])
def test_only_the_code_flow_is_admitted(gate, idp, callback_server, response_type):
    _, _, url, _ = start(gate, callback_server, "openid")
    response = requests_raw_get(BrowserSession(gate, callback_server).session, url.replace("response_type=code", f"response_type={response_type}"))
    assert response.status_code == 400
    assert "response_type=code" in response.text
    assert idp.received("/o/authorize/") == []


@pytest.mark.parametrize("path", ["/o/authorize", "/o//authorize/", "/o/Authorize/", "/o/x/../authorize/", "/o/%61uthorize/", "/o/authorize;x/"])
def test_other_spellings_of_the_authorization_path_never_reach_the_idp(gate, idp, callback_server, path):
    _, _, url, _ = start(gate, callback_server, "openid orders:read")
    query = url.split("?", 1)[1]
    session = BrowserSession(gate, callback_server).session
    prepared = requests_raw_get(session, gate.url + path + "?" + query)
    assert prepared.status_code == 400
    assert [e for e in idp.received() if "authorize" in e["path"].lower()] == []


class RawResponse:
    def __init__(self, status_code, text, headers):
        self.status_code = status_code
        self.text = text
        self.headers = headers


def requests_raw_get(session, url):
    """GET with the request target byte for byte as given: no client library normalizing or
    repairing it (requests and urllib3 re-encode malformed percent-escapes)."""
    import http.client

    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    connection.putrequest("GET", url[len(f"{parsed.scheme}://{parsed.netloc}"):], skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    result = RawResponse(response.status, response.read().decode("utf-8", "replace"), dict(response.getheaders()))
    connection.close()
    return result


def test_policy_explain_says_what_would_happen_and_changes_nothing(gate, idp):
    held = gate.cli("policy", "explain", "--client", CLIENT_ID, "--scope", "openid orders:read")
    assert "orders:read: ask by scopes[" in held and "decision: held for approval of orders:read" in held
    refused = gate.cli("policy", "explain", "--client", CLIENT_ID, "--scope", "openid admin:org")
    assert "decision: refused with access_denied" in refused
    assert "decision: forwarded" in gate.cli("policy", "explain", "--client", CLIENT_ID, "--scope", "openid profile")
    assert gate.pending() == [] and idp.received() == []
