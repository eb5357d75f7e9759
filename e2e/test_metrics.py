"""The admin listener as operators' tools read it: /metrics in Prometheus' text format, parsed by the
Prometheus client library's own parser, with the counters moving during a real hold-and-approve flow;
/healthz and /readyz for load balancers, without credentials."""
import re
import subprocess

import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import SCOPEGATE, BrowserSession, Gate, wait_for_port
from test_audit import audit_keys
from test_authorization_flow import start

SCRAPER = "scraper-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"


def scrape(gate):
    response = requests.get(gate.admin_url + "/metrics", headers={"Authorization": f"Bearer {SCRAPER}"}, timeout=10)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_parse_and_move_during_a_flow(idp, callback_server, tmp_path):
    keys = audit_keys(tmp_path)
    gate = Gate(
        idp, callback_server, tmp_path,
        extra=f"metrics:\n  token_env: SCOPEGATE_E2E_METRICS_TOKEN\nadmin:\n  token_env: SCOPEGATE_E2E_ADMIN_TOKEN\naudit:\n  keys: {keys}",
        env={"SCOPEGATE_E2E_METRICS_TOKEN": SCRAPER, "SCOPEGATE_E2E_ADMIN_TOKEN": ADMIN})
    gate.start()
    try:
        # The admin listener starts beside the public one, not necessarily first.
        wait_for_port(int(gate.admin_url.rsplit(":", 1)[1]), gate.process)
        assert requests.get(gate.admin_url + "/healthz", timeout=10).status_code == 200
        ready = requests.get(gate.admin_url + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "upstream": "ok", "audit_key": "ok"}
        assert requests.get(gate.admin_url + "/metrics", timeout=10).status_code == 401

        before = scrape(gate)
        assert before[("scopegate_approval_requests_opened_total", ())] == 0
        version = subprocess.run([str(SCOPEGATE), "--version"], capture_output=True, text=True, check=True).stdout.strip()
        assert re.fullmatch(r"\d+\.\d+\.\d+(-dev)?", version)
        assert before[("scopegate_build_info", (("version", version),))] == 1, "the scraper sees the release --version prints"
        _, _, url, _ = start(gate, callback_server, "openid orders:read")
        browser = BrowserSession(gate, callback_server)
        kind, page = browser.go(url)
        assert kind == "page"
        waiting = scrape(gate)
        assert waiting[("scopegate_approval_requests_opened_total", ())] == 1
        assert waiting[("scopegate_approval_requests_pending_requests", (("tier", "elevated"),))] == 1
        assert waiting[("scopegate_holds_waiting_requests", ())] == 1

        # The admin token decides; it does not read metrics.
        assert requests.get(gate.admin_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).status_code == 401
        approved = requests.post(
            gate.admin_url + f"/v1/requests/{gate.only_pending_id()}/approve", json={}, timeout=10,
            headers={"Authorization": f"Bearer {ADMIN}"})
        assert approved.status_code == 200
        kind, _ = browser.go(page.url)
        assert kind == "callback"
        after = scrape(gate)
        assert after[("scopegate_approval_requests_pending_requests", (("tier", "elevated"),))] == 0
        assert after[("scopegate_holds_waiting_requests", ())] == 0
        decided = (("outcome", "approved"), ("source", "admin"), ("tier", "elevated"))
        assert after[("scopegate_decisions_total", decided)] == 1
        assert after[("scopegate_time_to_decision_seconds_count", (("tier", "elevated"),))] == 1
        # Requests by endpoint class and outcome: the held authorization request was sent to its waiting
        # page, the released one forwarded (and the IdP's sign-in pages passed through).
        def requests_of(samples, endpoint, outcome):
            return samples[("scopegate_requests_total", (("endpoint", endpoint), ("outcome", outcome)))]
        assert requests_of(before, "authorization", "redirected") == 0
        assert requests_of(after, "authorization", "redirected") >= 1
        assert requests_of(after, "authorization", "forwarded") >= 1
        assert requests_of(after, "scopegate", "answered") >= 1, "the waiting page"
        assert requests_of(after, "pass_through", "forwarded") >= 1, "the IdP's sign-in page"
        # The IdP's latency, head to head: one observation per request forwarded, at the channel level
        # (pass-through, admitted authorizations) or fetched (discovery, the token endpoint).
        forwarded = sum(requests_of(after, e, "forwarded") for e in ("pass_through", "authorization"))
        assert after[("scopegate_upstream_latency_seconds_count", ())] >= forwarded >= 2
        assert after[("scopegate_upstream_latency_seconds_sum", ())] > 0
        assert after[("scopegate_upstream_latency_seconds_bucket", (("le", "+Inf"),))] == after[("scopegate_upstream_latency_seconds_count", ())]
        # Every audited change was a durable write: the hold, the decision, the release.
        assert after[("scopegate_audit_append_seconds_count", ())] >= before[("scopegate_audit_append_seconds_count", ())] + 3
        assert requests.get(gate.url + "/o/authorize%2F", timeout=10).status_code == 400
        assert requests_of(scrape(gate), "ambiguous", "refused") == 1
    finally:
        gate.stop()
