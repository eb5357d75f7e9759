"""Automation on how long a client has been known, and revocations carried to the IdP's admin API.

django-oauth-toolkit runs behind ScopeGate as in the rest of the suite. The IdP administration API
that revocations reach is Keycloak's admin REST API, stood in for by a small server that answers as
Keycloak documents those calls (client credentials token, client lookup by clientId, PUT of the
client's notBefore), since no Keycloak runs here."""
import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from conftest import CLIENT_ID, CONSENT_CLIENT, BrowserSession, Gate, free_port
from test_audit import audit_entries, audit_keys
from test_authorization_flow import finish, start


def test_a_new_client_is_denied_what_an_established_one_is_asked_about(idp, callback_server, tmp_path):
    keys = audit_keys(tmp_path)
    clients = f"""  - id: {CLIENT_ID}
    name: E2E App
    registration: admin
    registered: 2020-01-01
    redirect_uris: ["{callback_server}"]
  - id: {CONSENT_CLIENT}
    name: E2E Consent App
    redirect_uris: ["{callback_server}"]"""
    extra = f"""
audit:
  keys: {keys}
automation:
  - name: no-writes-for-new-apps
    decide: deny
    tiers: [critical]
    client_max_age: 30d
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra, clients=clients)
    gate.start()
    idp.reset()
    try:
        # Registered in 2020: its write request goes to the approvers.
        _, _, url, _ = start(gate, callback_server, "openid orders:write")
        kind, page = BrowserSession(gate, callback_server).go(url)
        assert kind == "page" and page.status_code == 200, "held: the waiting page"
        assert len(gate.pending()) == 1

        # Never seen before: its first request makes it new, and the rule denies it at once.
        session = OAuth2Session(
            CONSENT_CLIENT, redirect_uri=callback_server, scope="openid orders:write", code_challenge_method="S256")
        url, state = session.create_authorization_url(gate.url + "/o/authorize/", code_verifier=generate_token(48))
        kind, callback = BrowserSession(gate, callback_server).go(url)
        assert kind == "callback"
        answer = parse_qs(urlparse(callback).query)
        assert answer["error"] == ["access_denied"] and answer["state"] == [state]
        assert not [r for r in idp.received() if r["path"] == "/o/authorize/" and CONSENT_CLIENT in json.dumps(r)], \
            "the IdP never saw the denied request"
        entries = audit_entries(gate)
        decision = next(e for e in entries if e["event"] == "decision" and e["client_id"] == CONSENT_CLIENT)
        assert decision["data"]["actor"] == "policy:automation/no-writes-for-new-apps"
        assert decision["data"]["outcome"] == "denied"
        explained = gate.cli("policy", "explain", "--client", CONSENT_CLIENT, "--scope", "orders:write", "--with-grants")
        assert "registration listed, known since" in explained and "no-writes-for-new-apps" in explained
    finally:
        gate.stop()


class FakeKeycloakAdmin(BaseHTTPRequestHandler):
    """Keycloak's admin REST API, as far as revocation uses it."""

    realm = "acme"
    client_id = "scopegate-revocation"
    secret = secrets.token_hex(16)
    clients = {CLIENT_ID: "5a0c6f0e-1b7e-4c55-9d31-0000000000e2"}
    calls = []
    not_before = {}
    token = None

    def log_message(self, *args):
        pass

    def answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()

    def do_POST(self):
        body = self.body()
        type(self).calls.append(("POST", self.path, body))
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        if self.path != f"/realms/{self.realm}/protocol/openid-connect/token":
            return self.answer(404, {"error": "not found"})
        if self.headers.get("Authorization") != expected or body != "grant_type=client_credentials":
            return self.answer(401, {"error": "unauthorized_client"})
        type(self).token = secrets.token_urlsafe(24)
        self.answer(200, {"access_token": self.token, "expires_in": 300, "token_type": "Bearer"})

    def authorized(self):
        return self.token is not None and self.headers.get("Authorization") == f"Bearer {self.token}"

    def do_GET(self):
        type(self).calls.append(("GET", self.path, ""))
        url = urlparse(self.path)
        if not self.authorized():
            return self.answer(401, {"error": "HTTP 401 Unauthorized"})
        if url.path != f"/admin/realms/{self.realm}/clients":
            return self.answer(404, {"error": "not found"})
        wanted = parse_qs(url.query).get("clientId", [""])[0]
        found = [{"id": self.clients[wanted], "clientId": wanted}] if wanted in self.clients else []
        self.answer(200, found)

    def do_PUT(self):
        body = self.body()
        type(self).calls.append(("PUT", self.path, body))
        if not self.authorized():
            return self.answer(401, {"error": "HTTP 401 Unauthorized"})
        prefix = f"/admin/realms/{self.realm}/clients/"
        internal = self.path.removeprefix(prefix)
        if not self.path.startswith(prefix) or internal not in self.clients.values():
            return self.answer(404, {"error": "Could not find client"})
        type(self).not_before[internal] = json.loads(body)["notBefore"]
        self.answer(204)


@pytest.fixture
def keycloak_admin():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeKeycloakAdmin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeKeycloakAdmin.calls.clear()
    FakeKeycloakAdmin.not_before.clear()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_revoking_a_grant_revokes_the_clients_tokens_at_the_idp(idp, callback_server, tmp_path, keycloak_admin):
    keys = audit_keys(tmp_path)
    extra = f"""
audit:
  keys: {keys}
automation:
  - name: reads
    decide: approve
    clients: [{CLIENT_ID}]
    scopes: ["*:read"]
idp_revocation:
  kind: keycloak
  url: {keycloak_admin}
  realm: acme
  client_id: scopegate-revocation
  client_secret_env: E2E_KEYCLOAK_ADMIN_SECRET
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra, env={"E2E_KEYCLOAK_ADMIN_SECRET": FakeKeycloakAdmin.secret})
    gate.start()
    idp.reset()
    try:
        client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
        kind, callback = BrowserSession(gate, callback_server).go(url)
        assert kind == "callback"
        token = finish(gate, client, verifier, callback)
        assert "orders:read" in token["scope"].split()
        time.sleep(1.5)
        assert FakeKeycloakAdmin.calls == [], "granting revokes nothing"

        before = int(time.time())
        assert "revoked orders:read" in gate.cli("grants", "revoke", CLIENT_ID, "orders:read", "--as", "ops")
        deadline = time.time() + 10
        while not FakeKeycloakAdmin.not_before and time.time() < deadline:
            time.sleep(0.2)
        internal = FakeKeycloakAdmin.clients[CLIENT_ID]
        assert before <= FakeKeycloakAdmin.not_before.get(internal, 0) <= int(time.time()) + 1
        entries = audit_entries(gate)
        revoked = [e for e in entries if e["event"] == "idp.tokens_revoked"]
        assert len(revoked) == 1
        assert revoked[0]["client_id"] == CLIENT_ID
        assert revoked[0]["data"]["idp"] == "keycloak" and revoked[0]["data"]["scopes"] == ["orders:read"]
        assert FakeKeycloakAdmin.secret not in (tmp_path / "scopegate.log").read_text(), "the admin secret is never logged"

        # The app's refresh at ScopeGate's token endpoint no longer gets the revoked scope either.
        with pytest.raises(OAuthError) as refused:
            client.refresh_token(gate.url + "/o/token/", refresh_token=token["refresh_token"])
        assert refused.value.error == "invalid_scope"
    finally:
        gate.stop()
