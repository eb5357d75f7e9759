"""A Slack Web API stand-in for the end-to-end suite, answering as Slack's documentation describes:
`POST /api/{method}` with a bearer token; `{"ok": true, ...}` or `{"ok": false, "error": ...}`; HTTP 429
with `Retry-After` when rate limited. It records every call and can be told to fail. `interaction`
builds a button click exactly as Slack posts it to an app: form-encoded `payload`, signed with v0."""
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode

# Made anew for every run, like every other secret of the suite.
BOT_TOKEN = "e2e-bot-" + secrets.token_hex(16)
SIGNING_SECRET = secrets.token_hex(16)
TEAM_ID = "T0E2E"


class FakeSlack:
    def __init__(self, port):
        self.port = port
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.lock = threading.Lock()
        self.calls = []
        self.failures = {}
        self.groups = {}
        self.guests = set()
        self.next_ts = 1
        # Seconds each chat.postMessage takes to answer.
        self.post_delay = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                method = self.path.removeprefix("/api/")
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    arguments = json.loads(body or "{}")
                else:
                    arguments = dict(parse_qsl(body))
                if method == "chat.postMessage" and fake.post_delay:
                    time.sleep(fake.post_delay)
                status, headers, answer = fake.answer(method, arguments, self.headers.get("Authorization"))
                payload = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()

    def fail(self, method, *failures):
        """Answers the next calls of `method` with these: an int (HTTP status), ("429", seconds), or an
        error string (`{"ok": false, "error": ...}`)."""
        with self.lock:
            self.failures.setdefault(method, []).extend(failures)

    def answer(self, method, arguments, authorization):
        with self.lock:
            self.calls.append({"method": method, "arguments": arguments, "authorization": authorization})
            queue = self.failures.get(method) or []
            failure = queue.pop(0) if queue else None
            if failure is None and method == "chat.postMessage":
                self.next_ts += 1
            ts = f"1700000000.{self.next_ts:06d}"
        if authorization != f"Bearer {BOT_TOKEN}":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        if isinstance(failure, int):
            return failure, {}, None
        if isinstance(failure, tuple):
            return 429, {"Retry-After": str(failure[1])}, None
        if isinstance(failure, str):
            return 200, {}, {"ok": False, "error": failure}
        if method == "chat.postMessage":
            channel = arguments.get("channel", "")
            return 200, {}, {"ok": True, "channel": "D" + channel[1:] if channel.startswith("U") else channel, "ts": ts}
        if method == "chat.update":
            return 200, {}, {"ok": True, "channel": arguments.get("channel"), "ts": arguments.get("ts")}
        if method == "chat.postEphemeral":
            return 200, {}, {"ok": True, "message_ts": "1700000001.000001"}
        if method == "users.info":
            user = arguments.get("user", "")
            if not user.startswith("U"):
                return 200, {}, {"ok": False, "error": "user_not_found"}
            # With users:read.email the profile carries the address (U0ALICE: alice@example.com).
            return 200, {}, {"ok": True, "user": {
                "id": user, "team_id": TEAM_ID, "name": user.lower(), "deleted": False, "is_bot": False,
                "is_restricted": user in self.guests, "is_ultra_restricted": False, "is_email_confirmed": True,
                "profile": {"real_name": user.removeprefix("U0").title(), "email": f"{user.removeprefix('U0').lower()}@example.com"},
            }}
        if method == "users.lookupByEmail":
            # Needs users:read.email; the workspace's members are U0{NAME} with name@example.com.
            local, _, domain = arguments.get("email", "").partition("@")
            if domain != "example.com" or not local.isalpha():
                return 200, {}, {"ok": False, "error": "users_not_found"}
            user = "U0" + local.upper()
            return 200, {}, {"ok": True, "user": {
                "id": user, "team_id": TEAM_ID, "name": local, "deleted": False, "is_bot": False,
                "profile": {"email": arguments["email"]},
            }}
        if method == "usergroups.users.list":
            members = self.groups.get(arguments.get("usergroup"))
            if members is None:
                return 200, {}, {"ok": False, "error": "no_such_subteam"}
            return 200, {}, {"ok": True, "users": members}
        return 200, {}, {"ok": False, "error": "unknown_method"}

    def calls_to(self, method):
        with self.lock:
            return [call for call in self.calls if call["method"] == method]

    def wait_for(self, method, count=1, timeout=10, where=lambda call: True):
        deadline = time.time() + timeout
        while time.time() < deadline:
            matching = [call for call in self.calls_to(method) if where(call)]
            if len(matching) >= count:
                return matching
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} {method} calls after {timeout}s: {self.calls_to(method)}")


def sign(body, timestamp=None, secret=SIGNING_SECRET):
    timestamp = str(int(time.time() if timestamp is None else timestamp))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def interaction(action, request_id, user, team=TEAM_ID, channel="C0APPROVALS", trigger_id=None, duration=None, ticked=None):
    """The form body of a `block_actions` click, as Slack sends it; `duration` is what the message's
    duration menu shows selected and `ticked` the scope checkboxes left ticked (Slack sends the
    message's inputs as `state`, by block id and action id)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "A0E2E",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1700000000.000002", "channel_id": channel, "is_ephemeral": False},
        "trigger_id": trigger_id or f"{uuid.uuid4().int}.{uuid.uuid4().hex}",
        "team": {"id": team, "domain": "e2e"},
        "channel": {"id": channel, "name": "approvals"},
        "response_url": f"https://hooks.slack.com/actions/{team}/1/abc",
        "actions": [
            {
                "action_id": action,
                "block_id": "scopegate_decision",
                "value": request_id,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    values = {}
    if duration is not None:
        values["scopegate_decision"] = {"scopegate_duration": {
            "type": "static_select", "selected_option": {"text": {"type": "plain_text", "text": f"Grant for {duration}"}, "value": duration}}}
    if ticked is not None:
        values["scopegate_scopes"] = {"scopegate_scopes": {
            "type": "checkboxes",
            "selected_options": [{"text": {"type": "plain_text", "text": scope, "emoji": True}, "value": scope} for scope in ticked]}}
    if values:
        payload["state"] = {"values": values}
    return urlencode({"payload": json.dumps(payload)})
