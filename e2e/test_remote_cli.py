"""The command line deciding through a running ScopeGate's admin API (`--server`): the approver's
machine has neither the configuration, the store file nor the audit signing key, only the admin API's
address and token."""
import json
import os
import subprocess

from conftest import SCOPEGATE, BrowserSession, Gate
from test_authorization_flow import finish, start

ADMIN = "remote-admin-token-0123456789"


def remote(gate, *args, token=ADMIN, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOPEGATE_")}
    if token:
        env["SCOPEGATE_ADMIN_TOKEN"] = token
    return subprocess.run(
        [str(SCOPEGATE), "requests", *args, "--server", gate.admin_url], capture_output=True, text=True, timeout=60,
        env=env, cwd=cwd)


def test_requests_are_listed_and_decided_through_the_admin_api(idp, callback_server, tmp_path):
    (tmp_path / "server").mkdir()
    gate = Gate(idp, callback_server, tmp_path / "server", extra="admin:\n  token_env: E2E_ADMIN\n  token_name: ops",
                env={"E2E_ADMIN": ADMIN})
    gate.start()
    elsewhere = tmp_path / "approver"
    elsewhere.mkdir()
    try:
        client, verifier, url, _ = start(gate, callback_server, "openid orders:read")
        browser = BrowserSession(gate, callback_server)
        kind, page = browser.go(url)
        assert kind == "page"
        request_id = gate.only_pending_id()

        listed = remote(gate, "list", "--state", "pending", "--json", cwd=elsewhere)
        assert listed.returncode == 0, listed.stderr
        assert [r["id"] for r in json.loads(listed.stdout)] == [request_id]
        wrong = remote(gate, "approve", request_id, token="not-the-token-at-all", cwd=elsewhere)
        assert wrong.returncode != 0 and "refused the token" in wrong.stderr
        missing = remote(gate, "approve", request_id, token=None, cwd=elsewhere)
        assert missing.returncode != 0 and "SCOPEGATE_ADMIN_TOKEN" in missing.stderr
        assert gate.only_pending_id() == request_id, "nothing was decided"

        approved = remote(gate, "approve", request_id, "--as", "alice", "--reason", "vendor review", cwd=elsewhere)
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout.strip() == f"{request_id} approved"
        shown = json.loads(remote(gate, "show", request_id, cwd=elsewhere).stdout)
        assert shown["decided_by"] == "admin:ops/alice"
        kind, callback = browser.go(page.url)
        assert kind == "callback"
        assert "orders:read" in finish(gate, client, verifier, callback)["scope"].split()
        again = remote(gate, "deny", request_id, cwd=elsewhere)
        assert again.returncode != 0 and "already" in again.stderr
    finally:
        gate.stop()
