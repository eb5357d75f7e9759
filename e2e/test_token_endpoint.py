"""The token endpoint through ScopeGate, in front of django-oauth-toolkit: a client-credentials grant
for a scope nobody approved is refused with invalid_scope and reaches nothing (the IdP's recorder is the
oracle); once approved, a retry gets a token with that scope."""
import requests
from authlib.integrations.requests_client import OAuth2Session

from conftest import SERVICE, BrowserSession
from test_authorization_flow import finish, start


def token(gate, scope, **kwargs):
    return requests.post(
        gate.url + "/o/token/", data={"grant_type": "client_credentials", "scope": scope, **kwargs}, auth=SERVICE, timeout=10
    )


def test_client_credentials_wait_for_approval_then_pass(gate, idp):
    refused = token(gate, "orders:read")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    assert "awaiting approval" in refused.json()["error_description"]
    assert refused.headers["Cache-Control"] == "no-store"
    assert idp.received("/o/token/") == [], "the IdP must receive nothing"
    again = token(gate, "orders:read")
    assert again.status_code == 400
    pending = gate.pending()
    assert len(pending) == 1 and pending[0]["client_id"] == "e2e-service"
    gate.cli("requests", "approve", pending[0]["id"], "--as", "e2e-approver")
    # A real OAuth client library, as a service would use it.
    session = OAuth2Session(SERVICE[0], SERVICE[1], scope="orders:read")
    issued = session.fetch_token(gate.url + "/o/token/", grant_type="client_credentials")
    assert issued["scope"].split() == ["orders:read"]
    assert len(idp.received("/o/token/")) == 1


def test_policy_denied_scopes_never_reach_the_token_endpoint(gate, idp):
    refused = token(gate, "admin:org")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    assert gate.pending() == []
    assert idp.received("/o/token/") == []


def test_ambiguous_token_requests_are_refused(gate, idp):
    url = gate.url + "/o/token/"
    cases = [
        requests.get(url, timeout=10),
        requests.post(url, json={"grant_type": "client_credentials"}, auth=SERVICE, timeout=10),
        requests.post(url, data="grant_type=client_credentials&scope=openid&scope=orders:read",
                      headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=SERVICE, timeout=10),
        requests.post(url + "?scope=orders:read", data={"grant_type": "client_credentials"}, auth=SERVICE, timeout=10),
        requests.post(url, data={"grant_type": "client_credentials", "scope": "openid", "client_id": "e2e-app"},
                      auth=SERVICE, timeout=10),
        requests.post(url, data={"grant_type": "client_credentials", "scope": "openid"}, timeout=10),
    ]
    assert [response.status_code for response in cases] == [405, 400, 400, 400, 401, 401]
    assert all(response.headers.get("Cache-Control") == "no-store" for response in cases)
    assert idp.received("/o/token/") == []


def test_a_password_grant_waits_for_approval_then_passes(gate, idp):
    password_app = ("e2e-password", SERVICE[1])
    form = {"grant_type": "password", "username": "alice", "password": "wonderland", "scope": "orders:read"}
    refused = requests.post(gate.url + "/o/token/", data=form, auth=password_app, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    assert idp.received("/o/token/") == []
    gate.cli("requests", "approve", gate.only_pending_id(), "--as", "e2e-approver")
    session = OAuth2Session(password_app[0], password_app[1], scope="orders:read")
    issued = session.fetch_token(gate.url + "/o/token/", username="alice", password="wonderland")
    assert issued["scope"].split() == ["orders:read"]


def test_a_refresh_asking_for_more_is_gated(gate, idp, callback_server):
    client, verifier, url, _ = start(gate, callback_server, "openid profile")
    kind, callback = BrowserSession(gate, callback_server).go(url)
    assert kind == "callback"
    token = finish(gate, client, verifier, callback)
    issued = len(idp.received("/o/token/"))
    more = requests.post(
        gate.url + "/o/token/",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": client.client_id,
              "scope": "openid orders:read"},
        timeout=10,
    )
    assert more.status_code == 400 and more.json()["error"] == "invalid_scope"
    assert "awaiting approval of orders:read" in more.json()["error_description"]
    assert len(idp.received("/o/token/")) == issued, "the refresh asking for more never reached the IdP"
    # The same refresh without asking for more passes.
    same = client.refresh_token(gate.url + "/o/token/", refresh_token=token["refresh_token"])
    assert set(same["scope"].split()) == {"openid", "profile"}
