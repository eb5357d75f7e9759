"""The device authorization grant (RFC 8628) through ScopeGate, in front of django-oauth-toolkit: a
device asking for a scope nobody approved is held (the IdP receives nothing, not even the device
request) and its polling is answered by ScopeGate; once approved from the command line, the held request
is released to the IdP, the user confirms the device at the IdP (through ScopeGate) with the code
ScopeGate's verification page shows, and the device gets a token with that scope."""
import re
import time

import requests

DEVICE = "e2e-device"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def poll(gate, device_code):
    return requests.post(
        gate.url + "/o/token/", data={"grant_type": GRANT, "device_code": device_code, "client_id": DEVICE}, timeout=10
    )


def form_token(html):
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_a_held_device_waits_for_approval_then_completes_at_the_idp(gate, idp):
    started = requests.post(
        gate.url + "/o/device-authorization/", data={"client_id": DEVICE, "scope": "orders:read"}, timeout=10
    )
    assert started.status_code == 200, started.text
    device = started.json()
    assert device["verification_uri"] == gate.url + "/_scopegate/device"
    assert idp.received("/o/device-authorization/") == [], "the IdP must receive nothing while the request is held"

    time.sleep(device["interval"] + 0.2)
    pending = poll(gate, device["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    assert poll(gate, device["device_code"]).json()["error"] == "slow_down"
    assert idp.received("/o/token/") == []

    waiting = requests.get(device["verification_uri_complete"], timeout=10)
    assert DEVICE in waiting.text and "orders:read" in waiting.text and "Waiting for the organisation" in waiting.text
    gate.cli("requests", "approve", gate.only_pending_id(), "--as", "e2e-approver")

    # The next poll releases the held request to the IdP.
    released = poll(gate, device["device_code"])
    assert released.json()["error"] == "authorization_pending"
    assert len(idp.received("/o/device-authorization/")) == 1

    # The user follows ScopeGate's page to the IdP, signs in and confirms with the IdP's code.
    page = requests.get(device["verification_uri_complete"], timeout=10).text
    idp_code = re.search(r"Enter the code <strong><code>([^<]+)</code>", page).group(1)
    link = re.search(r'<a class="button" href="([^"]+)"', page).group(1)
    assert link.startswith(gate.url + "/o/device/"), "the IdP's page is reached through ScopeGate"
    user = requests.Session()
    signed_in = user.post(
        gate.url + "/accounts/login/", data={"username": "alice", "password": "wonderland", "next": "/o/device/"}, timeout=10
    )
    assert signed_in.status_code == 200 and "Enter code displayed on device" in signed_in.text
    confirm = user.post(
        gate.url + "/o/device/", data={"user_code": idp_code, "csrfmiddlewaretoken": form_token(signed_in.text)}, timeout=10
    )
    assert "requests access" in confirm.text, confirm.text[:500]
    accepted = user.post(confirm.url, data={"action": "accept", "csrfmiddlewaretoken": form_token(confirm.text)}, timeout=10)
    assert accepted.status_code == 200

    time.sleep(5.2)
    issued = poll(gate, device["device_code"])
    assert issued.status_code == 200, issued.text
    assert issued.json()["scope"].split() == ["orders:read"]
    assert len(idp.received("/o/token/")) == 1


def test_a_denied_device_gets_access_denied_and_the_idp_nothing(gate, idp):
    device = requests.post(
        gate.url + "/o/device-authorization/", data={"client_id": DEVICE, "scope": "orders:write"}, timeout=10
    ).json()
    gate.cli("requests", "deny", gate.only_pending_id(), "--as", "e2e-approver")
    denied = poll(gate, device["device_code"])
    assert denied.status_code == 400 and denied.json()["error"] == "access_denied"
    assert idp.received() == []
