"""Microsoft's side of a Teams bot, faked for the end-to-end suite as Microsoft's documentation describes
it: the identity platform's token endpoint (client credentials grant), the Bot Framework's OpenID
metadata document and its JWKS (keys with `endorsements`, signed here with the fake's own RSA keys), and
the Bot Connector REST API (`POST /v3/conversations`, `PUT /v3/conversations/{id}/activities/{id}`),
with HTTP 429 and `Retry-After` when told to. It records every call. `invoke` builds an
`adaptiveCard/action` invoke activity exactly as the Bot Connector posts it to a bot, with its JWT."""
import base64
import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

APP_ID = str(uuid.uuid4())
APP_PASSWORD = "e2e-teams-" + secrets.token_hex(16)
TENANT_ID = str(uuid.uuid4())
ISSUER = "https://api.botframework.com"
KEY_ID = "e2e-key-1"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(number):
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


class FakeTeams:
    def __init__(self, port):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.service_url = f"{self.base}/teams/"
        self.metadata_url = f"{self.base}/v1/.well-known/openidconfiguration"
        self.authority = self.base
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.lock = threading.Lock()
        self.calls = []
        self.failures = {}
        self.tokens = set()
        self.next_activity = 1
        # Directory addresses of conversation members, by Microsoft Entra object id.
        self.members = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_any(self, method):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode() if length else ""
                status, headers, answer = fake.answer(method, self.path, body, self.headers)
                payload = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self.handle_any("GET")

            def do_POST(self):
                self.handle_any("POST")

            def do_PUT(self):
                self.handle_any("PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()

    def fail(self, name, *failures):
        """Answers the next calls named `name` (token, conversations.create, activities.update) with these
        failures: an HTTP status, or ("429", seconds)."""
        with self.lock:
            self.failures.setdefault(name, []).extend(failures)

    def calls_to(self, name):
        with self.lock:
            return [call for call in self.calls if call["name"] == name]

    def wait_for(self, name, where=lambda call: True, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [call for call in self.calls_to(name) if where(call)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {name} call arrived; calls: {[c['name'] for c in self.calls]}")

    def jwks(self):
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{
            "kty": "RSA", "use": "sig", "kid": KEY_ID, "n": b64url(int_bytes(numbers.n)), "e": b64url(int_bytes(numbers.e)),
            "x5t": KEY_ID, "endorsements": ["msteams", "webchat"],
        }]}

    def answer(self, method, path, body, headers):
        name = None
        if method == "POST" and path == f"/{TENANT_ID}/oauth2/v2.0/token":
            name = "token"
        elif method == "GET" and path == "/v1/.well-known/openidconfiguration":
            name = "metadata"
        elif method == "GET" and path == "/v1/keys":
            name = "jwks"
        elif method == "POST" and path == "/teams/v3/conversations":
            name = "conversations.create"
        elif method == "PUT" and path.startswith("/teams/v3/conversations/") and "/activities/" in path:
            name = "activities.update"
        elif method == "POST" and path.startswith("/teams/v3/conversations/") and path.endswith("/activities"):
            name = "activities.send"
        elif method == "POST" and path.startswith("/workflows/"):
            name = "workflow.post"
        elif method == "GET" and path.startswith("/teams/v3/conversations/") and "/members/" in path:
            name = "members.get"
        if name is None:
            return 404, {}, {"error": {"code": "NotFound", "message": f"{method} {path}"}}
        try:
            parsed = json.loads(body) if body and name != "token" else dict(parse_qsl(body))
        except ValueError:
            return 400, {}, {"error": {"code": "BadSyntax", "message": "body is not JSON"}}
        call = {"name": name, "path": path, "body": parsed, "authorization": headers.get("Authorization")}
        with self.lock:
            self.calls.append(call)
            queued = self.failures.get(name) or []
            failure = queued.pop(0) if queued else None
        if failure is not None:
            if isinstance(failure, tuple):
                return 429, {"Retry-After": str(failure[1])}, {"error": {"code": "TooManyRequests", "message": "slow down"}}
            return failure, {}, {"error": {"code": "Failure", "message": "told to fail"}}
        if name == "workflow.post":
            # Teams Workflows' "When a Teams webhook request is received": 202, and no message id.
            return 202, {}, None
        if name == "metadata":
            return 200, {}, {
                "issuer": ISSUER, "authorization_endpoint": "https://invalid.botframework.com/v1/auth",
                "jwks_uri": f"{self.base}/v1/keys", "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        if name == "jwks":
            return 200, {}, self.jwks()
        if name == "token":
            if (parsed.get("grant_type"), parsed.get("client_id"), parsed.get("client_secret"), parsed.get("scope")) != (
                "client_credentials", APP_ID, APP_PASSWORD, "https://api.botframework.com/.default"
            ):
                return 401, {}, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
            token = "e2e-connector-" + secrets.token_hex(16)
            with self.lock:
                self.tokens.add(token)
            return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        # The Bot Connector: a bearer token from the token endpoint, or 401.
        bearer = (headers.get("Authorization") or "").removeprefix("Bearer ")
        with self.lock:
            known = bearer in self.tokens
        if not known:
            return 401, {}, {"message": "Authorization has been denied for this request."}
        if name == "members.get":
            # GET /v3/conversations/{id}/members/{member}: a TeamsChannelAccount, by the member's id or
            # Entra object id.
            member = unquote(path.rsplit("/", 1)[1]).lower()
            with self.lock:
                email = self.members.get(member)
            if email is None:
                return 404, {}, {"error": {"code": "MemberNotFound", "message": "The member was not found."}}
            return 200, {}, {
                "id": "29:1" + member.replace("-", ""), "name": email.split("@")[0].title(), "aadObjectId": member,
                "email": email, "userPrincipalName": email, "tenantId": TENANT_ID, "userRole": "user",
            }
        attachments = (parsed.get("activity") if name == "conversations.create" else parsed).get("attachments") or []
        if name == "activities.send":
            conversation = unquote(path.removeprefix("/teams/v3/conversations/").removesuffix("/activities"))
            if not (conversation.endswith("@thread.v2") or ";messageid=" in conversation):
                return 404, {}, {"error": {"code": "ConversationNotFound", "message": "Conversation not found."}}
        if not attachments or attachments[0].get("contentType") != "application/vnd.microsoft.card.adaptive":
            return 400, {}, {"error": {"code": "BadArgument", "message": "the activity has no Adaptive Card"}}
        if name == "conversations.create":
            channel = (parsed.get("channelData") or {}).get("channel", {}).get("id", "")
            if not channel.startswith("19:"):
                return 404, {}, {"error": {"code": "ConversationNotFound", "message": "Conversation not found."}}
            with self.lock:
                activity = str(1700000000000 + self.next_activity)
                self.next_activity += 1
            return 201, {}, {"id": f"{channel};messageid={activity}", "activityId": activity}
        if name == "activities.send":
            with self.lock:
                activity = str(1700000000000 + self.next_activity)
                self.next_activity += 1
            return 200, {}, {"id": activity}
        activity = unquote(path.rsplit("/", 1)[1])
        return 200, {}, {"id": activity}

    def token(self, claims=None, header=None, key=None):
        """A Bot Connector token for this bot, signed with the fake's key unless told otherwise."""
        now = int(time.time())
        header = header or {"alg": "RS256", "kid": KEY_ID, "typ": "JWT", "x5t": KEY_ID}
        body = {"serviceurl": self.service_url, "nbf": now - 60, "exp": now + 3600, "iss": ISSUER, "aud": APP_ID}
        body.update(claims or {})
        body = {k: v for k, v in body.items() if v is not None}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(body).encode())).encode()
        signature = (key or self.key).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(signature)

    def public_key_pem(self):
        return self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def invoke(fake, verb, request_id, user, tenant=TENANT_ID, activity_id=None, conversation="19:e2e@thread.tacv2", inputs=None):
    """An `adaptiveCard/action` invoke as the Bot Connector posts it when `user` clicks a card's action;
    `inputs` are the card's input values, which Universal Actions merge into the action's data (a
    multi-select choice set's as its chosen values joined by commas)."""
    return {
        "type": "invoke", "name": "adaptiveCard/action", "id": activity_id or str(uuid.uuid4()),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "localTimestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00"),
        "serviceUrl": fake.service_url, "channelId": "msteams",
        "from": {"id": "29:1" + user.replace("-", ""), "name": "E2E Approver", "aadObjectId": user},
        "conversation": {"isGroup": True, "conversationType": "channel", "tenantId": tenant, "id": conversation + ";messageid=1"},
        "recipient": {"id": "28:" + APP_ID, "name": "ScopeGate"},
        "entities": [{"locale": "en-US", "country": "US", "platform": "Web", "type": "clientInfo"}],
        "channelData": {"channel": {"id": conversation}, "team": {"id": conversation}, "tenant": {"id": tenant}, "source": {"name": "message"}},
        "replyToId": "1",
        "value": {"action": {"type": "Action.Execute", "title": "Approve", "verb": verb, "data": dict(inputs or {}, request=request_id)}, "trigger": "manual"},
        "locale": "en-US",
    }
