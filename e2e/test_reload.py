"""SIGHUP reloads the policy of a running ScopeGate (django-oauth-toolkit behind it): the new policy
decides at once and the audit log records it; an invalid file changes nothing."""
import signal
import subprocess
import time

from conftest import SCOPEGATE, BrowserSession, Gate
from test_audit import audit_entries, audit_keys
from test_authorization_flow import finish, start


def wait_for_log(gate, text, seen=0, timeout=10):
    """Waits until `text` appears in the gate's log more than `seen` times; returns the count."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        count = (gate.work / "scopegate.log").read_text().count(text)
        if count > seen:
            return count
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged")


def test_sighup_puts_a_new_policy_in_force_and_refuses_an_invalid_one(idp, callback_server, tmp_path):
    keys = audit_keys(tmp_path)
    gate = Gate(idp, callback_server, tmp_path, extra=f"audit:\n  keys: {keys}\n")
    gate.start()
    idp.reset()
    try:
        _, _, url, _ = start(gate, callback_server, "openid orders:read")
        kind, _ = BrowserSession(gate, callback_server).go(url)
        assert kind == "page", "orders:read is asked about"
        assert not idp.received("/o/authorize/")

        original = gate.config.read_text()
        approving = original.replace('  - pattern: "*:read"\n    auto: ask', '  - pattern: "*:read"\n    auto: approve')
        assert approving != original
        gate.config.write_text(approving)
        gate.process.send_signal(signal.SIGHUP)
        wait_for_log(gate, "policy reloaded")

        client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
        kind, callback = BrowserSession(gate, callback_server).go(url)
        assert kind == "callback", "the reloaded policy approves reads"
        assert "orders:read" in finish(gate, client, verifier, callback)["scope"].split()

        reloaded = [e for e in audit_entries(gate) if e["event"] == "config.reloaded"]
        loaded = [e for e in audit_entries(gate) if e["event"] == "config.loaded"]
        assert len(reloaded) == 1
        assert reloaded[0]["data"]["previous_policy_sha256"] == loaded[0]["data"]["policy_sha256"]
        assert reloaded[0]["data"]["policy_sha256"] != loaded[0]["data"]["policy_sha256"]

        # A file with a mistake: logged with its key and line, and the policy in force stays.
        gate.config.write_text(approving.replace("auto: approve", "auto: sometimes", 1))
        gate.process.send_signal(signal.SIGHUP)
        wait_for_log(gate, "configuration not reloaded")
        assert "scopes[0].auto" in (gate.work / "scopegate.log").read_text()
        client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
        kind, callback = BrowserSession(gate, callback_server).go(url)
        assert kind == "callback", "still the reloaded policy"
        assert gate.process.poll() is None, "ScopeGate keeps running"
        gate.config.write_text(approving)
        verified = subprocess.run([str(SCOPEGATE), "audit", "verify", "--config", str(gate.config)], capture_output=True, text=True)
        assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr
        refused = [e for e in audit_entries(gate) if e["event"] == "config.reload_refused"]
        assert len(refused) == 1 and "scopes[0].auto" in refused[0]["data"]["reason"]
    finally:
        gate.stop()
