"""The signed audit log end to end: a real approval flow through ScopeGate in front of
django-oauth-toolkit, exported with `scopegate audit export` and verified with joserfc, a JOSE library
ScopeGate does not use, against the JWKS fetched over HTTP; tampering is caught by `audit verify`."""
import base64
import hashlib
import json
import subprocess
import sys
import time

import pytest
import requests
from joserfc import jws
from joserfc.jwk import KeySet

from conftest import ROOT, SCOPEGATE, BrowserSession, Gate
from test_authorization_flow import finish, start


def audit_keys(tmp_path):
    """A new audit signing key and JWKS in tmp_path/keys."""
    keys = tmp_path / "keys"
    subprocess.run([str(SCOPEGATE), "keys", "generate", "--dir", str(keys)], check=True, capture_output=True)
    return keys


def audit_entries(gate):
    """The payloads of the gate's exported audit log."""
    return [json.loads(base64.urlsafe_b64decode(t.split(".")[1] + "==")) for t in gate.cli("audit", "export").split()]


@pytest.fixture
def audit_gate(idp, callback_server, tmp_path):
    keys = audit_keys(tmp_path)
    extra = f"""
audit:
  keys: {keys}
  checkpoint_every: 5
  checkpoint_interval: 2s
  checkpoint_file: {tmp_path / "checkpoints.jsonl"}
"""
    instance = Gate(idp, callback_server, tmp_path, extra=extra)
    instance.start()
    idp.reset()
    yield instance
    instance.stop()


def approval_flow(gate, callback_server):
    client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
    browser = BrowserSession(gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    request_id = gate.only_pending_id()
    gate.cli("requests", "approve", request_id, "--as", "auditor-test")
    kind, callback = browser.go(page.url)
    assert kind == "callback"
    assert "orders:read" in finish(gate, client, verifier, callback)["scope"].split()
    return request_id


def export(gate, path):
    path.write_text(gate.cli("audit", "export"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_exported_log_verifies_with_an_independent_jose_library(audit_gate, callback_server, tmp_path):
    request_id = approval_flow(audit_gate, callback_server)
    tokens = export(audit_gate, tmp_path / "audit.jsonl")
    jwks = requests.get(audit_gate.url + "/_scopegate/audit/jwks.json", timeout=10)
    assert jwks.status_code == 200 and jwks.headers["Content-Type"] == "application/jwk-set+json"
    keys = KeySet.import_key_set(jwks.json())
    entries, previous = [], None
    for seq, token in enumerate(tokens, start=1):
        verified = jws.deserialize_compact(token, keys, algorithms=["ES256", "EdDSA"])
        assert verified.headers()["typ"] == "scopegate-audit+jwt"
        entry = json.loads(verified.payload)
        assert entry["seq"] == seq
        expected_prev = base64.urlsafe_b64encode(hashlib.sha256(previous.encode()).digest()).rstrip(b"=").decode() if previous else None
        assert entry["prev"] == expected_prev
        assert entry["iss"] == audit_gate.url
        entries.append(entry)
        previous = token
    events = [entry["event"] for entry in entries]
    assert events[0] == "config.loaded" and len(entries[0]["data"]["policy_sha256"]) == 64
    for expected in ["approval_request.opened", "hold.created", "decision", "grant.created", "hold.released"]:
        assert expected in events, events
    decision = next(entry for entry in entries if entry["event"] == "decision")
    assert decision["data"] == {**decision["data"], "request_id": request_id, "outcome": "approved", "actor": "cli:auditor-test"}
    opened = next(entry for entry in entries if entry["event"] == "approval_request.opened")
    assert opened["client_id"] == "e2e-app" and opened["data"]["scopes"] == ["orders:read"]
    assert any(rule.startswith("orders:read=scopes[") for rule in opened["data"]["rules"])
    # No secret of the request is in the log: not the PKCE challenge, not the state.
    log_text = (tmp_path / "audit.jsonl").read_text()
    assert "code_challenge" not in log_text and "state=" not in log_text
    # The auditor's recipe from the README works on the same export.
    recipe = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "verify-audit-log.py"), str(tmp_path / "audit.jsonl"),
         audit_gate.url + "/_scopegate/audit/jwks.json"],
        capture_output=True, text=True,
    )
    assert recipe.returncode == 0, recipe.stderr
    assert f"{len(tokens)} entries verified" in recipe.stdout
    assert "verified" in audit_gate.cli("audit", "verify")


def tampered(gate, tmp_path, name, change):
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(change(lines)) + "\n")
    return subprocess.run(
        [str(SCOPEGATE), "audit", "verify", "--input", str(path), "--config", str(gate.config)],
        capture_output=True, text=True, env=gate.env,
    )


def test_audit_verify_names_the_first_bad_entry(audit_gate, callback_server, tmp_path):
    approval_flow(audit_gate, callback_server)
    export(audit_gate, tmp_path / "audit.jsonl")

    def edit_payload(lines):
        token = json.loads(lines[2])
        header, payload, signature = token.split(".")
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        decoded["data"]["forged"] = True
        forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
        return lines[:2] + [json.dumps(f"{header}.{forged}.{signature}")] + lines[3:]

    cases = {
        "edited": (edit_payload, "entry 3"),
        "deleted": (lambda lines: lines[:1] + lines[2:], "entry 2"),
        "swapped": (lambda lines: [lines[0], lines[2], lines[1]] + lines[3:], "entry 2"),
    }
    for name, (change, where) in cases.items():
        result = tampered(audit_gate, tmp_path, name, change)
        assert result.returncode != 0, name
        assert where in result.stderr, (name, result.stderr)
    untouched = tampered(audit_gate, tmp_path, "untouched", lambda lines: lines)
    assert untouched.returncode == 0, untouched.stderr


def test_a_checkpoint_reveals_a_truncated_log(audit_gate, callback_server, tmp_path):
    approval_flow(audit_gate, callback_server)
    checkpoints = tmp_path / "checkpoints.jsonl"
    deadline = time.time() + 15
    while time.time() < deadline:
        count = len(audit_gate.cli("audit", "export").splitlines())
        latest = [json.loads(line) for line in checkpoints.read_text().splitlines()] if checkpoints.exists() else []
        covered = [json.loads(base64.urlsafe_b64decode(c.split(".")[1] + "==="))["count"] for c in latest]
        if covered and covered[-1] == count:
            break
        time.sleep(0.5)
    export(audit_gate, tmp_path / "audit.jsonl")
    result = tampered(audit_gate, tmp_path, "truncated", lambda lines: lines[:-2])
    assert result.returncode != 0
    assert "truncated" in result.stderr, result.stderr


def test_without_its_signing_key_the_command_line_cannot_decide(audit_gate, callback_server, tmp_path):
    _, _, url, _ = start(audit_gate, callback_server, "openid orders:read")
    browser = BrowserSession(audit_gate, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    request_id = audit_gate.only_pending_id()
    key = tmp_path / "keys" / "audit-signing-key.jwk"
    key.rename(tmp_path / "moved.jwk")
    result = subprocess.run(
        [str(SCOPEGATE), "requests", "approve", request_id, "--config", str(audit_gate.config)],
        capture_output=True, text=True, env=audit_gate.env,
    )
    assert result.returncode != 0 and "audit-signing-key.jwk" in result.stderr
    (tmp_path / "moved.jwk").rename(key)
    assert audit_gate.pending()[0]["state"] == "pending"
    kind, page = browser.go(page.url)
    assert kind == "page" and "Waiting for approval" in page.text


def test_an_auditor_exports_and_verifies_without_the_operators_secrets(idp, callback_server, tmp_path):
    """The configuration names an admin token and Slack secrets that the auditor's environment lacks:
    `audit export` and `audit verify` need only the store and the JWKS; `serve` still refuses."""
    keys = audit_keys(tmp_path)
    extra = f"""
audit:
  keys: {keys}
admin:
  token_env: SCOPEGATE_E2E_ADMIN_TOKEN
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra, env={"SCOPEGATE_E2E_ADMIN_TOKEN": "t" * 32})
    gate.start()
    try:
        approval_flow(gate, callback_server)
    finally:
        gate.stop()
    auditor = {name: value for name, value in gate.env.items() if name != "SCOPEGATE_E2E_ADMIN_TOKEN"}
    run = lambda *args: subprocess.run(
        [str(SCOPEGATE), *args, "--config", str(gate.config)], capture_output=True, text=True, env=auditor, timeout=60)
    exported = run("audit", "export")
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) > 3
    verified = run("audit", "verify")
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr
    checked = run("config", "check")
    assert checked.returncode == 0 and "warning: admin.token_env names the environment variable SCOPEGATE_E2E_ADMIN_TOKEN" in checked.stdout
    assert run("config", "check", "--environment").returncode != 0
    served = run("serve")
    assert served.returncode != 0 and "SCOPEGATE_E2E_ADMIN_TOKEN" in served.stderr


def test_an_automatic_approval_names_its_rule_in_the_audit_log(idp, callback_server, tmp_path):
    keys = audit_keys(tmp_path)
    extra = f"""
audit:
  keys: {keys}
automation:
  - name: first-party-reads
    decide: approve
    clients: [e2e-app]
    scopes: ["*:read"]
  - name: never-write-from-consent
    decide: deny
    clients: [e2e-consent]
    tiers: [critical]
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra)
    gate.start()
    idp.reset()
    try:
        client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
        kind, callback = BrowserSession(gate, callback_server).go(url)
        assert kind == "callback", "no approver was asked"
        assert "orders:read" in finish(gate, client, verifier, callback)["scope"].split()
        assert gate.pending() == []
        entries = audit_entries(gate)
        decision = next(e for e in entries if e["event"] == "decision")
        assert decision["data"]["outcome"] == "approved"
        assert decision["data"]["actor"] == "policy:automation/first-party-reads"
        assert decision["data"]["reason"] == "automation rule first-party-reads (automation[0])"
        grant = next(e for e in entries if e["event"] == "grant.created")
        assert grant["data"]["scope"] == "orders:read" and grant["data"]["approved_by"] == "policy:automation/first-party-reads"
        # The grant stands: the next sign-in goes straight through, and orders:write is still asked about.
        explain = subprocess.run(
            [str(SCOPEGATE), "policy", "explain", "--client", "e2e-app", "--scope", "orders:read orders:write", "--with-grants",
             "--config", str(gate.config)], capture_output=True, text=True, check=True).stdout
        assert "held for approval of orders:write" in explain
        verified = subprocess.run([str(SCOPEGATE), "audit", "verify", "--config", str(gate.config)], capture_output=True, text=True)
        assert verified.returncode == 0, verified.stderr
    finally:
        gate.stop()


def test_shadow_mode_lets_requests_through_and_records_what_the_policy_would_do(idp, callback_server, tmp_path):
    keys = audit_keys(tmp_path)
    extra = f"""
audit:
  keys: {keys}
shadow:
  clients: [e2e-app]
"""
    gate = Gate(idp, callback_server, tmp_path, extra=extra)
    gate.start()
    idp.reset()
    try:
        check = subprocess.run([str(SCOPEGATE), "config", "check", "--config", str(gate.config)], capture_output=True, text=True)
        assert "shadow mode is on for e2e-app" in check.stdout
        for scope in ["openid orders:read", "openid admin:org"]:
            client, verifier, url, _ = start(gate, callback_server, scope)
            kind, callback = BrowserSession(gate, callback_server).go(url)
            assert kind == "callback", f"{scope} went through in shadow mode"
            assert scope.split()[1] in finish(gate, client, verifier, callback)["scope"].split()
        assert gate.pending() == [], "nobody was asked"
        entries = audit_entries(gate)
        shadow = [e["data"] for e in entries if e["event"] == "policy.shadow"]
        assert {"would": "hold", "channel": "authorization", "scopes": ["orders:read"]}.items() <= shadow[0].items()
        assert any(s["would"] == "deny" and s["scopes"] == ["admin:org"] for s in shadow)
        assert not any(e["event"] == "decision" for e in entries), "no decision was made or recorded"
        assert subprocess.run([str(SCOPEGATE), "audit", "verify", "--config", str(gate.config)], capture_output=True).returncode == 0
    finally:
        gate.stop()
