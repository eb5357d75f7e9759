"""Two ScopeGate replicas on one PostgreSQL database, in front of django-oauth-toolkit, with Slack
approvals on the fake Slack Web API: a request held on one replica is approved through the other's
interaction endpoint and continues where it waits; approval requests opened concurrently on both are
posted exactly once each; the audit chain both replicas wrote verifies as one.

Needs the PostgreSQL server scripts/start-test-postgres.sh starts (SCOPEGATE_TEST_POSTGRES_URL, set
by scripts/test.sh); each test makes a database of its own."""
import json
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse, urlunparse

import pytest
import requests

from conftest import SCOPEGATE, BrowserSession, Gate, free_port
from fake_slack import FakeSlack
from test_audit import audit_keys
from test_authorization_flow import finish, start
from test_slack import SLACK_ENV, click, slack_config

BASE_URL = os.environ.get("SCOPEGATE_TEST_POSTGRES_URL")


def fresh_database():
    """A new database on the test server; its URL."""
    name = "sg_e2e_" + uuid.uuid4().hex[:16]
    subprocess.run(["psql", BASE_URL, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    parts = urlparse(BASE_URL)
    return urlunparse(parts._replace(path="/" + name))


@pytest.fixture
def replicas(idp, callback_server, tmp_path):
    if BASE_URL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("scripts/test.sh starts PostgreSQL and sets SCOPEGATE_TEST_POSTGRES_URL")
        pytest.skip("no PostgreSQL server for the tests (run scripts/start-test-postgres.sh)")
    slack = FakeSlack(free_port())
    url = fresh_database()
    keys = audit_keys(tmp_path)
    extra = slack_config(slack) + f"""
audit:
  keys: {keys}
routes:
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
default_route: everyone
"""
    env = dict(SLACK_ENV, E2E_POSTGRES_URL=url)
    store = "  postgres_url_env: E2E_POSTGRES_URL"
    approvals = "  new_holds_per_minute: {per_source: 1000, per_client: 1000, total: 1000}"
    gates = []
    for name in ("a", "b"):
        work = tmp_path / name
        work.mkdir()
        gates.append(Gate(idp, callback_server, work, extra=extra, env=env, store=store, approvals=approvals))
    # Replicas behind one load balancer share one public URL: the audit log's issuer, and where
    # browsers are sent back to.
    gates[1].config.write_text(gates[1].config.read_text().replace(f"public_url: {gates[1].url}", f"public_url: {gates[0].url}"))
    for gate in gates:
        gate.start()
    idp.reset()
    yield gates[0], gates[1], slack
    for gate in gates:
        gate.stop()
    slack.stop()


def test_a_request_held_on_one_replica_is_approved_on_the_other_and_continues(replicas, idp, callback_server):
    a, b, slack = replicas
    client, verifier, url, _ = start(a, callback_server, "openid orders:read")
    browser = BrowserSession(a, callback_server)
    kind, page = browser.go(url)
    assert kind == "page"
    request_id = b.only_pending_id()
    slack.wait_for("chat.postMessage")
    assert click(b, "scopegate_approve", request_id).status_code == 200
    started = time.time()
    kind, callback = browser.go(page.url)
    assert kind == "callback", "the browser waiting on A was released by the decision made on B"
    assert time.time() - started < 5
    # The client's backend reaches the other replica: it knows the code A relayed.
    assert "orders:read" in finish(b, client, verifier, callback)["scope"].split()
    received = idp.received("/o/authorize/")
    assert received and all("orders" in r["query"] for r in received), "only the approved request reached the IdP"
    time.sleep(1)
    assert len(slack.calls_to("chat.postMessage")) == 1, "one message, though both replicas run the outbox"


def test_requests_opened_on_both_replicas_are_each_posted_once_and_the_chain_verifies(replicas, callback_server):
    a, b, slack = replicas
    total = 200

    def hold(index):
        gate = a if index % 2 == 0 else b
        _, _, url, _ = start(gate, callback_server, f"openid r{index}:read")
        response = requests.get(url, allow_redirects=False, timeout=30)
        return response.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(hold, range(total)))
    assert statuses == [303] * total, "every request is held"
    slack.wait_for("chat.postMessage", count=total, timeout=90)
    time.sleep(2)
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == total, f"{len(posts)} messages for {total} approval requests"
    assert len({p["arguments"]["channel"] + str(p["arguments"].get("blocks")) for p in posts}) == total
    pending = a.pending()
    assert len(pending) == total
    verified = subprocess.run(
        [str(SCOPEGATE), "audit", "verify", "--config", str(b.config)], capture_output=True, text=True, env=b.env, timeout=120)
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr + verified.stdout


def test_a_replica_killed_while_it_posts_loses_nothing_and_the_other_finishes(replicas, callback_server):
    a, b, slack = replicas
    slack.post_delay = 0.2
    total = 30

    def hold(index):
        _, _, url, _ = start(a, callback_server, f"openid k{index}:read")
        return requests.get(url, allow_redirects=False, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(hold, range(total))) == [303] * total
    slack.wait_for("chat.postMessage", count=3, timeout=30)
    a.process.kill()  # SIGKILL: no shutdown, claims and all left as they are
    a.process.wait(timeout=10)
    assert len(b.pending()) == total, "every held request is still there"
    # The killed replica's claims lapse (30 s) and the survivor posts what was left.
    deadline = time.time() + 90
    while time.time() < deadline:
        posted = [json.dumps(p["arguments"]) for p in slack.calls_to("chat.postMessage")]
        ids = {r["id"] for r in b.pending()}
        if all(any(i in text for text in posted) for i in ids):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the survivor did not post every message")
    posts = slack.calls_to("chat.postMessage")
    assert total <= len(posts) <= total + 1, "at most the one post in flight at the kill is repeated"
