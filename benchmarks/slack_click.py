#!/usr/bin/env python3
"""Approval click to browser continuing, through ScopeGate with Slack approvals.

On loopback: a small upstream standing in for the IdP, the fake Slack Web API of the end-to-end suite,
and ScopeGate (release build) between them. Each round holds a new authorization request (a scope
nobody holds yet), waits until ScopeGate has posted it to Slack, then, with the waiting page's live
status request already waiting, sends a signed Approve click to the interaction endpoint and measures
until the browser has continued: the status answer, the waiting page's redirect, and the IdP's answer
to the released request. Prints p50 / p95 / p99 / max over all rounds.

    swift build -c release --product scopegate
    python3 benchmarks/slack_click.py [--rounds 300]

Needs only Python's standard library and `requests`.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import requests

from common import RELEASE_BINARY, ROOT, free_ports, require, scopegate_config, wait_for

sys.path.insert(0, str(ROOT / "e2e"))
import fake_slack  # noqa: E402
from fake_slack import FakeSlack, interaction, sign  # noqa: E402


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--binary", default=str(RELEASE_BINARY))
    args = parser.parse_args()
    require(args.binary)

    work = Path(tempfile.mkdtemp(prefix="scopegate-slack-bench-"))
    up, gate, admin, slack_port = free_ports(4)
    upstream = ThreadingHTTPServer(("127.0.0.1", up), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    slack = FakeSlack(slack_port)
    config = work / "scopegate.yaml"
    config.write_text(scopegate_config(work, gate, admin, up, "*", extra=f"""
slack:
  team_id: {fake_slack.TEAM_ID}
  bot_token_env: BENCH_SLACK_BOT_TOKEN
  signing_secret_env: BENCH_SLACK_SIGNING_SECRET
  api_url: {slack.api_url}
routes:
  - name: everyone
    channel: C0APPROVALS
    approvers:
      users: [U0ALICE]
default_route: everyone
"""))
    env = dict(
        os.environ, SCOPEGATE_LOG_LEVEL="warning", BENCH_SLACK_BOT_TOKEN=fake_slack.BOT_TOKEN,
        BENCH_SLACK_SIGNING_SECRET=fake_slack.SIGNING_SECRET,
    )
    server = subprocess.Popen([args.binary, "serve", "--config", str(config)], env=env)
    base = f"http://127.0.0.1:{gate}"
    latencies = []
    try:
        wait_for(gate)
        clicks = requests.Session()
        for index in range(args.rounds):
            browser = requests.Session()
            query = (
                f"response_type=code&client_id=bench&redirect_uri=https%3A%2F%2Fbench.example%2Fcb"
                f"&scope=s{index}&state=st{index}"
            )
            held = browser.get(f"{base}/authorize?{query}", allow_redirects=False, timeout=10)
            assert held.status_code == 303, held.status_code
            page = urljoin(base, held.headers["Location"])
            posted = slack.wait_for("chat.postMessage", count=index + 1)
            request_id = json.dumps(posted[-1]["arguments"]["blocks"]).split("`ar_")[1].split("`")[0]
            request_id = "ar_" + request_id

            done = {}

            def continue_when_released():
                status = browser.get(page + "/status", timeout=30)
                assert json.loads(status.text)["state"] == "approved", status.text
                released = browser.get(page, allow_redirects=False, timeout=10)
                assert released.status_code == 303, released.status_code
                answer = browser.get(urljoin(base, released.headers["Location"]), allow_redirects=False, timeout=10)
                assert answer.status_code == 200, answer.status_code
                done["at"] = time.perf_counter()

            waiter = threading.Thread(target=continue_when_released)
            waiter.start()
            time.sleep(0.02)  # the status request is waiting at ScopeGate
            body = interaction("scopegate_approve", request_id, "U0ALICE")
            started = time.perf_counter()
            assert clicks.post(f"{base}/_scopegate/slack/interactions", data=body, headers=sign(body), timeout=10).status_code == 200
            waiter.join(timeout=30)
            latencies.append((done["at"] - started) * 1000)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
        slack.stop()
        upstream.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{len(latencies)} approvals, {os.cpu_count()} cores: click to browser continuing, in ms\n")
    print("| p50 | p95 | p99 | max |")
    print("|---:|---:|---:|---:|")
    print(
        f"| {statistics.median(latencies):.1f} | {percentile(latencies, 0.95):.1f} | "
        f"{percentile(latencies, 0.99):.1f} | {max(latencies):.1f} |"
    )
    print(f"\np99 target: under 100 ms — {'met' if percentile(latencies, 0.99) < 100 else 'not met'}")


if __name__ == "__main__":
    main()
