"""idpyoidc's OpenID Provider (PyPI, 5.x) behind a small WSGI layer of the suite's own, as its example
Flask app wires it: parameters read with the first of a repeated name winning (werkzeug's `to_dict`),
PAR at its own path, request objects by value (`alg: none` accepted), and a client-credentials grant
that issues every scope the client is allowed, whatever it asked for.

Usage: python op.py <port> <issuer> <record-file> <redirect-uri> <client-secret>
Every request is recorded, one JSON line each: the suite's oracle for "the IdP received nothing".
"""
import json
import os
import sys
import tempfile
import threading
from http.cookies import SimpleCookie
from socketserver import ThreadingMixIn
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from idpyoidc.message.oauth2 import ResponseMessage
from idpyoidc.message.oidc import AccessTokenRequest
from idpyoidc.server import Server
from idpyoidc.server.client_configure import verify_oidc_client_information
from idpyoidc.server.configure import OPConfiguration
from idpyoidc.server.oidc.token import Token

PORT, ISSUER, RECORD, REDIRECT_URI, SECRET = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
WORK = tempfile.mkdtemp(prefix="idpyoidc-")
SCOPES = ["openid", "profile", "email", "orders:read", "orders:write", "admin:org"]
_lock = threading.Lock()

CONFIG = {
    "issuer": ISSUER,
    "entity_id": ISSUER,
    "password": "e2e only",
    "httpc_params": {"verify": False},
    "keys": {"private_path": os.path.join(WORK, "jwks.json"), "key_defs": [{"type": "RSA", "use": ["sig"]}], "uri_path": "jwks", "read_only": False},
    "token_handler_args": {
        "jwks_def": {
            "private_path": os.path.join(WORK, "token_jwks.json"),
            "read_only": False,
            "key_defs": [{"type": "oct", "bytes": 24, "use": ["enc"], "kid": "code"}, {"type": "oct", "bytes": 24, "use": ["enc"], "kid": "refresh"}],
        },
        "code": {"lifetime": 600},
        "token": {"lifetime": 3600},
        "refresh": {"lifetime": 86400},
        "id_token": {"class": "idpyoidc.server.token.id_token.IDToken", "kwargs": {}},
    },
    "scopes_to_claims": {scope: (["sub"] if scope == "openid" else []) for scope in SCOPES},
    "add_on": {"pkce": {"function": "idpyoidc.server.oauth2.add_on.pkce.add_support", "kwargs": {"essential": True, "code_challenge_method": "S256"}}},
    "authentication": {
        "anon": {"acr": "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified", "class": "idpyoidc.server.user_authn.user.NoAuthn", "kwargs": {"user": "diana"}}
    },
    "userinfo": {"class": "idpyoidc.server.user_info.UserInfo", "kwargs": {"db": {"diana": {"sub": "diana", "email": "diana@example.com"}}}},
    "cookie_handler": {
        "class": "idpyoidc.server.cookie_handler.CookieHandler",
        "kwargs": {"keys": {"key_defs": [{"type": "OCT", "use": ["enc"], "kid": "enc"}, {"type": "OCT", "use": ["sig"], "kid": "sig"}]},
                   "name": {"session": "oidc_op", "register": "oidc_op_rp", "session_management": "sman"}},
    },
    "authz": {
        "class": "idpyoidc.server.authz.AuthzHandling",
        "kwargs": {"grant_config": {"usage_rules": {
            "authorization_code": {"supports_minting": ["access_token", "refresh_token", "id_token"], "max_usage": 1},
            "access_token": {},
            "refresh_token": {"supports_minting": ["access_token", "refresh_token"]},
        }, "expires_in": 43200}},
    },
    "endpoint": {
        "provider_config": {"path": ".well-known/openid-configuration", "class": "idpyoidc.server.oidc.provider_config.ProviderConfiguration", "kwargs": {}},
        "authorization": {
            "path": "authorization",
            "class": "idpyoidc.server.oidc.authorization.Authorization",
            "kwargs": {
                "response_types_supported": ["code"],
                "response_modes_supported": ["query", "form_post"],
                "request_parameter_supported": True,
                "request_uri_parameter_supported": True,
                "request_object_signing_alg_values_supported": ["none", "RS256", "HS256"],
            },
        },
        "pushed_authorization": {
            "path": "pushed_authorization",
            "class": "idpyoidc.server.oauth2.pushed_authorization.PushedAuthorization",
            "kwargs": {"client_authn_method": ["client_secret_basic", "client_secret_post"]},
        },
        "token": {
            "path": "token",
            "class": "idpyoidc.server.oidc.token.Token",
            "kwargs": {
                "client_authn_method": ["client_secret_basic", "client_secret_post"],
                "grant_types_helpers": {
                    "authorization_code": {"class": "idpyoidc.server.oidc.token_helper.access_token.AccessTokenHelper"},
                    "refresh_token": {"class": "idpyoidc.server.oidc.token_helper.refresh_token.RefreshTokenHelper"},
                    "client_credentials": {"class": "idpyoidc.server.oauth2.token_helper.client_credentials.ClientCredentials"},
                },
            },
        },
        "userinfo": {"path": "userinfo", "class": "idpyoidc.server.oidc.userinfo.UserInfo", "kwargs": {}},
    },
    "template_dir": "templates",
}

CLIENTS = {
    "idpy-app": {
        "client_id": "idpy-app",
        "client_secret": SECRET,
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_basic",
        "response_types": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "allowed_scopes": SCOPES,
        "request_object_signing_alg": "none",
    },
    "idpy-service": {
        "client_id": "idpy-service",
        "client_secret": SECRET,
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types_supported": ["client_credentials"],
        # Whatever it asks for, idpyoidc's client-credentials grant issues all of these.
        "allowed_scopes": ["orders:read", "orders:write"],
    },
    "idpy-reporter": {
        "client_id": "idpy-reporter",
        "client_secret": SECRET,
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types_supported": ["client_credentials"],
        "allowed_scopes": ["orders:read"],
    },
}

server = Server(OPConfiguration(conf=CONFIG, base_path=WORK, domain="127.0.0.1", port=int(PORT)), cwd=WORK)
server.context.cdb = verify_oidc_client_information(CLIENTS)
ROUTES = {"/" + endpoint.endpoint_path.lstrip("/"): endpoint for endpoint in server.endpoint.values()}
ROUTES["/jwks"] = None


def record(environ, body):
    entry = {
        "method": environ["REQUEST_METHOD"],
        "path": environ.get("PATH_INFO", ""),
        "query": environ.get("QUERY_STRING", ""),
        "body": body.decode("utf-8", "replace"),
        "host": environ.get("HTTP_HOST", ""),
    }
    with _lock, open(RECORD, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def first_wins(text):
    """Form or query parameters, the first of a repeated name winning (werkzeug's `MultiDict.to_dict`)."""
    params = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        params.setdefault(name, value)
    return params


def respond(start_response, status, body, headers=()):
    data = body.encode() if isinstance(body, str) else body
    start_response(status, [("Content-Length", str(len(data))), *headers])
    return [data]


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    record(environ, body)
    path = environ.get("PATH_INFO", "")
    if path == "/jwks":
        return respond(start_response, "200 OK", json.dumps(server.context.keyjar.export_jwks()), [("Content-Type", "application/json")])
    endpoint = ROUTES.get(path)
    if endpoint is None:
        return respond(start_response, "404 Not Found", "not found")
    cookies = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    http_info = {
        "headers": {k: v for k, v in headers.items() if k not in ("cookie", "user-agent")},
        "method": environ["REQUEST_METHOD"],
        "url": ISSUER + path + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else ""),
        "cookie": [{"name": name, "value": morsel.value} for name, morsel in cookies.items()],
    }
    args = first_wins(environ.get("QUERY_STRING", "") if environ["REQUEST_METHOD"] == "GET" else body.decode())
    try:
        request = endpoint.parse_request(args, http_info=http_info)
        if isinstance(request, ResponseMessage) and "error" in request:
            return respond(start_response, "400 Bad Request", request.to_json(), [("Content-Type", "application/json")])
        if isinstance(endpoint, Token):
            request = AccessTokenRequest(**request)
        result = endpoint.process_request(request, http_info=http_info)
        if "error" in result and isinstance(result, ResponseMessage):
            return respond(start_response, "400 Bad Request", result.to_json(), [("Content-Type", "application/json")])
        # As idpyoidc's example app answers these two.
        if "redirect_location" in result:
            return respond(start_response, "303 See Other", "", [("Location", result["redirect_location"])])
        if "http_response" in result:
            return respond(start_response, "200 OK", json.dumps(result["http_response"]), [("Content-Type", "application/json")])
        info = endpoint.do_response(request=request, **result)
    except Exception as error:  # the IdP's own answer to what it cannot handle
        return respond(start_response, "400 Bad Request", json.dumps({"error": "invalid_request", "error_description": str(error)}),
                       [("Content-Type", "application/json")])
    extra = list(info.get("http_headers", []))
    placement = info.get("response_placement", endpoint.response_placement)
    if placement == "url":
        return respond(start_response, "303 See Other", "", [("Location", info["response"]), *extra])
    status = {200: "200 OK", 201: "201 Created", 400: "400 Bad Request", 401: "401 Unauthorized"}.get(info.get("response_code", 200), "200 OK")
    if not any(name.lower() == "content-type" for name, _ in extra):
        extra.append(("Content-Type", "application/json"))
    return respond(start_response, status, info["response"], extra)


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


if __name__ == "__main__":
    httpd = make_server("127.0.0.1", int(PORT), app, server_class=ThreadingWSGIServer, handler_class=Quiet)
    print("idpyoidc ready", flush=True)
    httpd.serve_forever()
