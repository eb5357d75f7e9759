"""ScopeGate's logs, at the most verbose level and as JSON lines, while tokens flow: a code flow, a held
and approved request, a client-credentials grant and a withheld token. No secret, token, code, cookie,
state or gated query may appear in them."""
import json

from conftest import SERVICE, BrowserSession, Gate
from test_authorization_flow import finish, start
from authlib.integrations.requests_client import OAuth2Session


def test_a_run_with_tokens_flowing_logs_none_of_them(idp, callback_server, tmp_path):
    gate = Gate(idp, callback_server, tmp_path, env={"SCOPEGATE_LOG_LEVEL": "trace", "SCOPEGATE_LOG_FORMAT": "json"})
    gate.start()
    secrets = {SERVICE[1]}
    try:
        client, verifier, url, state = start(gate, callback_server, "openid orders:read")
        browser = BrowserSession(gate, callback_server)
        kind, page = browser.go(url)
        gate.cli("requests", "approve", gate.only_pending_id())
        kind, callback = browser.go(page.url)
        assert kind == "callback"
        token = finish(gate, client, verifier, callback)
        code = callback.split("code=")[1].split("&")[0]
        secrets |= {token["access_token"], token["refresh_token"], token["id_token"], code, state, verifier}
        secrets |= {cookie.value for cookie in browser.session.cookies}
        service = OAuth2Session(SERVICE[0], SERVICE[1], scope="openid")
        granted = service.fetch_token(gate.url + "/o/token/", grant_type="client_credentials")
        secrets.add(granted["access_token"])
    finally:
        gate.stop()
    lines = [line for line in (tmp_path / "scopegate.log").read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert records and all({"ts", "level", "msg", "logger"} <= record.keys() for record in records)
    assert any(record.get("sg.request.id") for record in records), "records carry their request ids"
    text = "\n".join(lines)
    for secret in secrets:
        assert len(secret) >= 8 and secret not in text, f"a secret ({secret[:4]}…) was logged"
    assert "orders%3Aread" not in text and "code_challenge" not in text, "a gated query was logged"
