"""ScopeGate in front of LemonLDAP::NG (Debian's liblemonldap-ng-portal-perl), run as a PSGI app by
e2e/lemonldap/portal.py. Its sign-in and consent forms post back to the authorization URL with the
query kept (the consent form repeats every parameter as a hidden field), it ignores forwarded headers
(its `portal` URL is ScopeGate's public URL), drops unknown scopes silently, reads the last of a
repeated parameter, signs request objects HS256 with the client secret, omits `scope` from a token
response that grants what was asked, and remembers consent per user."""
import base64
import hashlib
import hmac
import json
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from conftest import SERVICE, gate_in_front_of

PORTAL = Path(__file__).resolve().parent / "lemonldap" / "portal.py"
APP, SERVICE_CLIENT = "llng-app", "llng-service"
SECRET = SERVICE[1]



class Forms(HTMLParser):
    """The forms of a page: id, action, and each input's name and value, in order."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"id": attrs.get("id"), "action": attrs.get("action", ""), "fields": []})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"].append((attrs["name"], attrs.get("value") or ""))


def forms(html):
    parser = Forms()
    parser.feed(html)
    return {form["id"]: form for form in parser.forms}


class Browser:
    """A cookie-keeping session that follows redirects, signs in as dwho and answers the consent screen."""

    def __init__(self, callback, consent=True):
        self.session = requests.Session()
        self.callback = callback
        self.consent = consent
        self.consents_shown = 0

    def go(self, url, max_steps=20):
        response = self.session.get(url, allow_redirects=False, timeout=30)
        for _ in range(max_steps):
            if response.status_code in (301, 302, 303, 307, 308):
                url = urljoin(url, response.headers["Location"])
                if url.startswith(self.callback):
                    return "callback", url
                response = self.session.get(url, allow_redirects=False, timeout=30)
                continue
            page = forms(response.text) if response.status_code == 200 else {}
            if "lform" in page:
                fields = dict(page["lform"]["fields"], user="dwho", password="dwho")
                response = self.session.post(url, data=fields, allow_redirects=False, timeout=30)
                continue
            if "form" in page and "confirm" in dict(page["form"]["fields"]):
                self.consents_shown += 1
                fields = page["form"]["fields"]
                if not self.consent:
                    fields = [(n, "-" + v if n == "confirm" else v) for n, v in fields]
                response = self.session.post(url, data=fields, allow_redirects=False, timeout=30)
                continue
            return "page", response
        raise AssertionError("too many steps")


@pytest.fixture
def setup(callback_server, tmp_path):
    gate, idp, portal = gate_in_front_of(
        lambda port, gate_url: [sys.executable, str(PORTAL), str(tmp_path / "llng"), str(port), gate_url, callback_server, SECRET],
        tmp_path, "lemonldap", [(APP, "LemonLDAP App", [callback_server]), (SERVICE_CLIENT, "LemonLDAP Service", [])],
        tmp_path / "llng" / "received.jsonl", timeout=60)
    yield gate, idp
    gate.stop()
    portal.terminate()
    portal.wait(timeout=10)


def start(gate, callback, scope, **extra):
    client = OAuth2Session(APP, SECRET, redirect_uri=callback, scope=scope, code_challenge_method="S256")
    verifier = generate_token(48)
    url, state = client.create_authorization_url(gate.url + "/oauth2/authorize", code_verifier=verifier, **extra)
    return client, verifier, url, state


def test_approved_scopes_through_sign_in_and_consent_yield_tokens(setup, callback_server):
    gate, idp = setup
    client, verifier, url, state = start(gate, callback_server, "openid profile")
    browser = Browser(callback_server)
    kind, callback = browser.go(url)
    assert kind == "callback", callback.text[:3000]
    assert browser.consents_shown == 1
    assert parse_qs(urlparse(callback).query)["state"] == [state]
    # LemonLDAP::NG omits `scope` from the token response (it is what was asked): the second gate reads
    # what the authorization that produced the code asked for, as ScopeGate admitted it.
    token = client.fetch_token(gate.url + "/oauth2/token", authorization_response=callback, code_verifier=verifier)
    assert "access_token" in token and "id_token" in token and "scope" not in token
    # The consent form posted back to the authorization URL with the query kept.
    assert [e for e in idp.received("/oauth2/authorize") if e["method"] == "POST" and "client_id=llng-app" in e["query"]]
    # Consent is remembered per user: the next sign-in of the same browser shows no consent screen.
    client, verifier, url, _ = start(gate, callback_server, "openid profile")
    kind, callback = browser.go(url)
    assert kind == "callback" and browser.consents_shown == 1
    assert "access_token" in client.fetch_token(gate.url + "/oauth2/token", authorization_response=callback, code_verifier=verifier)


def test_a_token_for_a_code_scopegate_never_relayed_is_withheld(setup, callback_server):
    gate, idp = setup
    client, verifier, url, _ = start(gate, callback_server, "openid")
    kind, callback = Browser(callback_server).go(url)
    assert kind == "callback"
    # Another code (as if obtained from the IdP directly, past ScopeGate): no scope shown, none known.
    forged = callback.replace("code=", "code=x")
    response = requests.post(gate.url + "/oauth2/token", auth=(APP, SECRET), timeout=10, data={
        "grant_type": "authorization_code", "code": parse_qs(urlparse(forged).query)["code"][0],
        "redirect_uri": callback_server, "code_verifier": verifier})
    assert response.status_code == 400 and "access_token" not in response.text


def test_an_unapproved_scope_is_held_approved_and_the_same_browser_completes(setup, callback_server):
    gate, idp = setup
    client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
    browser = Browser(callback_server)
    kind, page = browser.go(url)
    assert kind == "page" and "Waiting for approval" in page.text
    assert idp.received("/oauth2/authorize") == []
    gate.cli("requests", "approve", gate.only_pending_id(), "--once")
    kind, callback = browser.go(page.url)
    assert kind == "callback", callback.text[:2000]
    assert browser.consents_shown == 1
    token = client.fetch_token(gate.url + "/oauth2/token", authorization_response=callback, code_verifier=verifier)
    assert "access_token" in token
    # One approval request, decided once: neither the sign-in post nor the consent post opened another.
    assert len(json.loads(gate.cli("requests", "list", "--json"))) == 1


def test_a_denial_and_a_refused_consent_reach_the_client_as_access_denied(setup, callback_server):
    gate, idp = setup
    _, _, url, state = start(gate, callback_server, "openid orders:read")
    browser = Browser(callback_server)
    kind, page = browser.go(url)
    gate.cli("requests", "deny", gate.only_pending_id(), "--reason", "not now")
    kind, callback = browser.go(page.url)
    params = parse_qs(urlparse(callback).query)
    assert kind == "callback" and params["error"] == ["access_denied"] and params["state"] == [state]
    assert idp.received("/oauth2/authorize") == []
    # The user refuses LemonLDAP::NG's own consent screen: its answer (`consent_required`) reaches the client.
    _, _, url, state = start(gate, callback_server, "openid")
    kind, callback = Browser(callback_server, consent=False).go(url)
    params = parse_qs(urlparse(callback).query)
    assert kind == "callback" and params["error"] == ["consent_required"] and params["state"] == [state]


def test_the_last_of_a_repeated_scope_which_lemonldap_reads_is_gated(setup, callback_server):
    gate, idp = setup
    _, _, url, _ = start(gate, callback_server, "openid")
    kind, page = Browser(callback_server).go(url + "&scope=orders%3Awrite")
    assert kind == "page" and "Waiting for approval" in page.text
    assert idp.received("/oauth2/authorize") == []


def test_client_credentials_cannot_obtain_an_unapproved_scope(setup, callback_server):
    gate, idp = setup
    response = requests.post(gate.url + "/oauth2/token", auth=(SERVICE_CLIENT, SECRET), timeout=10,
                             data={"grant_type": "client_credentials", "scope": "orders:write"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    assert idp.received("/oauth2/token") == []
    allowed = requests.post(gate.url + "/oauth2/token", auth=(SERVICE_CLIENT, SECRET), timeout=10,
                            data={"grant_type": "client_credentials", "scope": "openid"})
    assert allowed.status_code == 200, allowed.text
    assert "access_token" in allowed.json()


def test_a_request_object_signed_with_the_client_secret_is_gated_on_what_it_asks(setup, callback_server):
    gate, idp = setup
    verifier = generate_token(48)
    from authlib.oauth2.rfc7636 import create_s256_code_challenge
    claims = {
        "iss": APP, "aud": gate.url, "client_id": APP, "response_type": "code", "redirect_uri": callback_server,
        "scope": "openid orders:write", "state": "ro-state",
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    }
    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing_input = encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + encode(json.dumps(claims).encode())
    signature = encode(hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())
    url = gate.url + "/oauth2/authorize?" + urlencode({
        "client_id": APP, "response_type": "code", "scope": "openid", "redirect_uri": callback_server,
        "request": signing_input + "." + signature,
    })
    browser = Browser(callback_server)
    kind, page = browser.go(url)
    assert kind == "page" and "orders:write" in page.text
    assert idp.received("/oauth2/authorize") == []
    gate.cli("requests", "approve", gate.only_pending_id())
    kind, callback = browser.go(page.url)
    assert kind == "callback", callback.text[:2000]
    assert parse_qs(urlparse(callback).query)["state"] == ["ro-state"]
    client = OAuth2Session(APP, SECRET, redirect_uri=callback_server)
    assert "access_token" in client.fetch_token(gate.url + "/oauth2/token", authorization_response=callback, code_verifier=verifier)
