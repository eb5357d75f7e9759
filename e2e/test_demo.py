"""`scopegate demo` works as the README says: the demo app signs in through ScopeGate, an auto-approved
scope passes, a held one waits until it is approved on the demo's approvals page, and a denied one
comes back as access_denied."""
import re
import signal
import subprocess
import time

import pytest
import requests

from conftest import SCOPEGATE, free_ports, wait_for_port


@pytest.fixture
def demo(tmp_path):
    # The ports are probed, then bound by another process: another program may still take one in
    # between. The demo then stops at once saying so, and starts again on other ports.
    for attempt in range(3):
        base = free_ports(6)
        log_path = tmp_path / f"demo-{attempt}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [str(SCOPEGATE), "demo", "--port-base", str(base), "--directory", str(tmp_path / f"demo-{attempt}")],
                stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            for port in (base, base + 1, base + 3, base + 4, base + 5):
                wait_for_port(port, process)
            break
        except RuntimeError:
            process.wait(timeout=15)
            if "Address already in use" not in log_path.read_text() or attempt == 2:
                raise
    yield f"http://127.0.0.1:{base + 3}", log_path, f"http://127.0.0.1:{base + 4}", f"http://127.0.0.1:{base + 5}"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)


def follow(session, url):
    for _ in range(20):
        response = session.get(url, allow_redirects=False, timeout=30)
        if response.status_code in (302, 303):
            url = requests.compat.urljoin(url, response.headers["Location"])
            continue
        return response
    raise AssertionError("too many redirects")


def test_demo_prints_what_to_open(demo):
    app, log, slack, teams = demo
    # The lines are written once the demo app listens, which may be just after its port opens.
    for _ in range(50):
        if f"Open {app}" in log.read_text():
            break
        time.sleep(0.1)
    assert f"Open {app}" in log.read_text()
    assert slack in log.read_text(), "the demo Slack's address is printed too"
    assert teams in log.read_text(), "and the demo Teams'"


def test_demo_auto_approved_sign_in(demo):
    app, _, _, _ = demo
    page = follow(requests.Session(), app + "/login?scope=openid+profile")
    assert "Signed in" in page.text and "openid profile" in page.text


def test_demo_held_then_approved_on_the_approvals_page(demo):
    app, _, _, _ = demo
    browser = requests.Session()
    waiting = follow(browser, app + "/login?scope=openid+orders:read")
    assert "Waiting for approval" in waiting.text
    approvals = requests.get(app + "/approvals").text
    request_id = re.search(r"/approvals/(ar_[0-9a-f]+)/approve", approvals).group(1)
    assert requests.post(app + f"/approvals/{request_id}/approve", allow_redirects=False).status_code in (302, 303)
    page = follow(browser, waiting.url)
    assert "Signed in" in page.text and "orders:read" in page.text


def test_demo_policy_denial(demo):
    app, _, _, _ = demo
    page = follow(requests.Session(), app + "/login?scope=openid+admin:org")
    assert "access_denied" in page.text


def test_demo_held_then_approved_in_the_demo_slack(demo):
    app, log, slack, _ = demo
    browser = requests.Session()
    waiting = follow(browser, app + "/login?scope=openid+orders:read")
    assert "Waiting for approval" in waiting.text
    # ScopeGate posts the request to the demo Slack's approvals channel, with its buttons.
    for _ in range(50):
        page = requests.get(slack + "/").text
        if "scopegate_approve" in page:
            break
        time.sleep(0.1)
    assert "#C0APPROVALS" in page and "orders:read" in page and "Demo App" in page
    request_id = re.search(r'name="value" value="(ar_[0-9a-f]+)"', page).group(1)
    channel = re.search(r'name="channel" value="([^"]+)"', page).group(1)
    ts = re.search(r'name="ts" value="([^"]+)"', page).group(1)
    click = {"action": "scopegate_approve", "value": request_id, "channel": channel, "ts": ts}
    # Mallory is not an approver: nothing changes, and the demo Slack shows her the ephemeral notice.
    requests.post(slack + "/click", data={**click, "user": "U0MALLORY"}, allow_redirects=False)
    assert "not an approver" in requests.get(slack + "/").text
    assert "Waiting for approval" in follow(browser, waiting.url).text
    # Alice is: a correctly signed click releases the waiting browser.
    requests.post(slack + "/click", data={**click, "user": "U0ALICE"}, allow_redirects=False)
    page = follow(browser, waiting.url)
    assert "Signed in" in page.text and "orders:read" in page.text
    for _ in range(50):
        if "Approved" in requests.get(slack + "/").text and "scopegate_approve" not in requests.get(slack + "/").text:
            break
        time.sleep(0.1)
    assert "scopegate_approve" not in requests.get(slack + "/").text, "the message shows the outcome instead of buttons"
    # The whole story is in the demo's signed audit log, and it verifies.
    config = demo_config(log)
    verified = subprocess.run([str(SCOPEGATE), "audit", "verify", "--config", config], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    tail = subprocess.run([str(SCOPEGATE), "audit", "tail", "-n", "50", "--config", config], capture_output=True, text=True).stdout
    assert "slack:T0DEMO/U0ALICE" in tail and "hold.released" in tail


def demo_config(log):
    """The --config path the demo prints."""
    return re.search(r"--config (\S+)", log.read_text()).group(1)


def test_demo_held_then_approved_in_the_demo_teams(demo):
    app, log, _, teams = demo
    browser = requests.Session()
    waiting = follow(browser, app + "/login?scope=openid+orders:read")
    assert "Waiting for approval" in waiting.text
    # ScopeGate posts the request to the demo Teams' approvals channel as an Adaptive Card.
    for _ in range(50):
        page = requests.get(teams + "/").text
        if "scopegate_approve" in page:
            break
        time.sleep(0.1)
    assert "19:approvals@thread.tacv2" in page and "orders:read" in page and "Demo App" in page
    request_id = re.search(r'value="scopegate_approve (ar_[0-9a-f]+)"', page).group(1)
    activity = re.search(r'name="activity" value="([^"]+)"', page).group(1)
    conversation = re.search(r'name="conversation" value="([^"]+)"', page).group(1)
    click = {"activity": activity, "conversation": conversation}
    mallory = "ba110000-0000-4000-8000-000000000003"
    alice = "a11ce000-0000-4000-8000-000000000001"
    # Mallory is not an approver: the invoke, signed as the Bot Connector signs it, changes nothing, and
    # Teams shows her ScopeGate's error.
    requests.post(teams + "/click", data={**click, "user": mallory, "action": f"scopegate_approve {request_id}"}, allow_redirects=False)
    assert "not an approver" in requests.get(teams + "/").text
    assert "Waiting for approval" in follow(browser, waiting.url).text
    requests.post(teams + "/click", data={**click, "user": alice, "action": f"scopegate_approve {request_id}"}, allow_redirects=False)
    page = follow(browser, waiting.url)
    assert "Signed in" in page.text and "orders:read" in page.text
    card = requests.get(teams + "/").text
    assert "Approved" in card and "scopegate_approve" not in card, "the card shows the outcome instead of actions"
    tail = subprocess.run([str(SCOPEGATE), "audit", "tail", "-n", "50", "--config", demo_config(log)], capture_output=True, text=True).stdout
    assert f"teams:d3e2f1a0-b9c8-4d7e-8f6a-5b4c3d2e1f00/{alice}" in tail
