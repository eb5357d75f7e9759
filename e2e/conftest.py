"""Fixtures for the end-to-end suite: a real IdP (django-oauth-toolkit), ScopeGate in front of it, a
callback server standing in for the client app, and a browser-like session that signs in."""
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
SCOPEGATE = Path(os.environ.get("SCOPEGATE_BIN", ROOT / ".build" / "debug" / "scopegate"))
IDP_DIR = Path(__file__).resolve().parent / "idp"
CLIENT_ID = "e2e-app"
# A confidential client for which django-oauth-toolkit shows its consent screen (its default).
CONSENT_CLIENT = "e2e-consent"
# The confidential client of the token-endpoint tests: its secret is made anew for every run.
SERVICE = ("e2e-service", secrets.token_hex(16))
# The port of the ScopeGate whose approval page approvers sign in to (e2e/test_approval_page.py): the
# IdP registers ScopeGate's callback at it before any test runs.
APPROVALS_GATE_PORT = None


_issued_ports = set()


def free_ports(count=1):
    """The first of `count` consecutive loopback ports that are free now and that this run has not
    handed out before.

    Chosen below the kernel's ephemeral range: a port inside it can be taken by any outgoing
    connection on the machine (the tests make many) between this probe and the server's bind, and
    the kernel may offer the same ephemeral port to two probes in a row.
    """
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError):
        low = 0
    for _ in range(1000):
        if low > 10_000 + count:
            base = random.randrange(10_000, low - count)
        else:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                base = sock.getsockname()[1]
        ports = range(base, base + count)
        if any(port in _issued_ports for port in ports):
            continue
        try:
            for port in ports:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        _issued_ports.update(ports)
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


def free_port():
    """A loopback port that is free now and that this run has not handed out before (see `free_ports`)."""
    return free_ports(1)


def wait_for_port(port, process=None, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class CallbackHandler(BaseHTTPRequestHandler):
    """The client app's redirect URI: answers 200 and shows what it received."""

    def do_GET(self):
        body = f"<!doctype html><title>callback</title><p id='callback'>{self.path}</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def callback_server():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), CallbackHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/callback"
    server.shutdown()


class IdP:
    def __init__(self, port, record_file, database=None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.record_file = record_file
        self.database = database

    def age_sign_in(self, username, seconds):
        """Moves a user's last sign-in (the ID token's `auth_time`) `seconds` into the past."""
        import sqlite3
        with sqlite3.connect(self.database) as db:
            db.execute("UPDATE auth_user SET last_login = datetime('now', ?) WHERE username = ?", (f"-{seconds} seconds", username))

    def received(self, path=None):
        if not self.record_file.exists():
            return []
        entries = [json.loads(line) for line in self.record_file.read_text().splitlines() if line]
        return [e for e in entries if path is None or e["path"] == path]

    def reset(self):
        self.record_file.write_text("")


@pytest.fixture(scope="session")
def idp(callback_server, tmp_path_factory):
    global APPROVALS_GATE_PORT
    APPROVALS_GATE_PORT = free_port()
    work = tmp_path_factory.mktemp("idp")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    env = dict(os.environ)
    env.update(
        IDP_DATABASE=str(work / "idp.sqlite3"),
        IDP_RSA_PRIVATE_KEY=pem.decode(),
        IDP_RECORD_FILE=str(work / "received.jsonl"),
        E2E_SERVICE_SECRET=SERVICE[1],
        E2E_APPROVALS_REDIRECT=f"http://127.0.0.1:{APPROVALS_GATE_PORT}/_scopegate/sign-in/callback",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    env["IDP_URL"] = f"http://127.0.0.1:{port}"
    subprocess.run([sys.executable, str(IDP_DIR / "setup_idp.py"), callback_server], check=True, env=env, cwd=IDP_DIR)
    log = open(work / "idp.log", "w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=IDP_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process)
    yield IdP(port, work / "received.jsonl", work / "idp.sqlite3")
    process.terminate()
    process.wait(timeout=10)


class Gate:
    """ScopeGate as a process, with its own config and SQLite file; restartable."""

    def __init__(self, idp, callback, work, extra="", env=None, port=None, upstream=None, clients=None, approvals="", store=None):
        self.env = dict(os.environ, **(env or {}))
        self.port = port or free_port()
        upstream = upstream or f"""  url: {idp.url}
  host_header: public
  discovery_path: /o/.well-known/openid-configuration
  device_authorization_endpoint: /o/device-authorization/"""
        clients = clients or f"""  - id: {CLIENT_ID}
    name: E2E App
    redirect_uris: ["{callback}"]
  - id: {CONSENT_CLIENT}
    name: E2E Consent App
    redirect_uris: ["{callback}"]"""
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{free_port()}"
        self.work = work
        self.config = work / "scopegate.yaml"
        self.config.write_text(
            f"""
public_url: {self.url}
listen:
  public: 127.0.0.1:{self.port}
  admin: {self.admin_url.removeprefix("http://")}
upstream:
{upstream}
store:
{store or f"  path: {work / 'scopegate.sqlite'}"}
approvals:
  timeout: 10m
{approvals}
scopes:
  - pattern: openid
    auto: approve
    tier: low
    description: Know who you are
  - pattern: profile
    auto: approve
    tier: low
  - pattern: "admin:*"
    auto: deny
    tier: critical
  - pattern: "*:read"
    auto: ask
    tier: elevated
    description: Read your organisation's orders
  - pattern: "*:write"
    auto: ask
    tier: critical
clients:
{clients}
{extra}
"""
        )
        self.process = None

    def start(self):
        self.log = open(self.work / "scopegate.log", "a")
        self.process = subprocess.Popen(
            [str(SCOPEGATE), "serve", "--config", str(self.config)], stdout=self.log, stderr=subprocess.STDOUT,
            env=self.env,
        )
        wait_for_port(self.port, self.process)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)

    def cli(self, *args):
        result = subprocess.run(
            [str(SCOPEGATE), *args, "--config", str(self.config)], capture_output=True, text=True, timeout=60,
            env=self.env,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def pending(self):
        return json.loads(self.cli("requests", "list", "--state", "pending", "--json"))

    def only_pending_id(self):
        pending = self.pending()
        assert len(pending) == 1, pending
        return pending[0]["id"]


def gate_in_front_of(command, tmp_path, name, clients, record, cwd=None, timeout=30):
    """Starts an IdP whose public URL is ScopeGate's (`command(idp_port, gate_url)` gives its command
    line, run with its log in `tmp_path / name.log`), and ScopeGate in front of it knowing `clients`
    (`(id, name, redirect_uris)`). Returns the gate, the IdP (recording into `record`) and its process."""
    gate_port, idp_port = free_port(), free_port()
    log = open(tmp_path / f"{name}.log", "w")
    process = subprocess.Popen(
        command(idp_port, f"http://127.0.0.1:{gate_port}"), stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    wait_for_port(idp_port, process, timeout=timeout)
    upstream = IdP(idp_port, record)
    listed = "\n".join(
        f"  - id: {client_id}\n    name: {title}\n    redirect_uris: {json.dumps(uris)}" for client_id, title, uris in clients)
    gate = Gate(upstream, None, tmp_path, port=gate_port, upstream=f"  url: {upstream.url}\n  host_header: public", clients=listed)
    gate.start()
    upstream.reset()
    return gate, upstream, process



def sign_in_gate(idp, callback, work, extra, env=None, scopes="[openid]", approvals=""):
    """ScopeGate with its own registration at the IdP (`sign_in`, client e2e-approvals, whose redirect
    URI the IdP knows on APPROVALS_GATE_PORT): for the approval page, step-up and identified requesters."""
    sign_in = f"""
sign_in:
  client_id: e2e-approvals
  client_secret_env: E2E_APPROVALS_SECRET
  scopes: {scopes}
"""
    clients = f"""  - id: {CLIENT_ID}
    name: E2E App
    redirect_uris: ["{callback}"]
  - id: e2e-approvals
    name: ScopeGate approvals
    redirect_uris: ["http://127.0.0.1:{APPROVALS_GATE_PORT}/_scopegate/sign-in/callback"]"""
    return Gate(idp, callback, work, extra=sign_in + extra, env=dict(env or {}, E2E_APPROVALS_SECRET=SERVICE[1]),
                port=APPROVALS_GATE_PORT, clients=clients, approvals=approvals)


@pytest.fixture
def gate(idp, callback_server, tmp_path):
    instance = Gate(idp, callback_server, tmp_path)
    instance.start()
    idp.reset()
    yield instance
    instance.stop()


class BrowserSession:
    """A cookie-keeping HTTP session that follows redirects one by one and signs in when the IdP asks."""

    def __init__(self, gate, redirect_uri, user=("alice", "wonderland")):
        self.session = requests.Session()
        self.gate = gate
        self.redirect_uri = redirect_uri
        self.user = user

    def go(self, url, max_steps=20):
        """Follows `url` until the client's redirect URI is reached (returns ("callback", url)) or a
        page is shown (returns ("page", response))."""
        for _ in range(max_steps):
            if url.startswith(self.redirect_uri):
                return "callback", url
            response = self.session.get(url, allow_redirects=False, timeout=30)
            if response.status_code in (301, 302, 303, 307, 308):
                url = urljoin(url, response.headers["Location"])
                continue
            if response.status_code == 200 and urlparse(url).path == "/accounts/login/":
                next_url = parse_qs(urlparse(url).query).get("next", ["/"])[0]
                response = self.session.post(
                    urljoin(url, "/accounts/login/"),
                    data={"username": self.user[0], "password": self.user[1], "next": next_url},
                    allow_redirects=False, timeout=30,
                )
                assert response.status_code == 302, response.text
                url = urljoin(url, response.headers["Location"])
                continue
            return "page", response
        raise AssertionError("too many redirects")
