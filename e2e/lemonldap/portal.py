"""LemonLDAP::NG's portal (Debian's liblemonldap-ng-portal-perl) as its OpenID Connect provider, run
as a PSGI app with plackup: no Apache, no nginx, no system services. Everything it keeps (its
configuration, sessions, caches) lives in one folder of the test run's.

As shipped it ignores forwarded headers: its issuer and every link come from `portal`, which must be
ScopeGate's public URL. Its consent screen is on, and remembered per user; request objects are signed
HS256 with the client secret; unknown scopes are dropped silently; of a repeated parameter the last
wins (Plack's `param`); a token response omits `scope` when it equals the request's.

Usage: python portal.py <folder> <port> <public-url> <redirect-uri> <client-secret>
Every request the portal receives is recorded in <folder>/received.jsonl.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# Debian's index.psgi, with a recording wrapper around it (recording.psgi).
PSGI = str(Path(__file__).resolve().parent / "recording.psgi")


def configure(folder: Path, public_url: str, redirect_uri: str, secret: str) -> Path:
    for name in ("conf", "sessions/lock", "psessions/lock", "cache"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    storage = lambda name: {
        "Directory": str(folder / name), "LockDirectory": str(folder / name / "lock"),
        "generateModule": "Lemonldap::NG::Common::Apache::Session::Generate::SHA256",
    }
    client = lambda client_id, **options: {
        "oidcRPMetaDataOptionsClientID": client_id,
        "oidcRPMetaDataOptionsClientSecret": secret,
        "oidcRPMetaDataOptionsRedirectUris": redirect_uri,
        "oidcRPMetaDataOptionsIDTokenSignAlg": "RS256",
        "oidcRPMetaDataOptionsDisplayName": client_id,
        **options,
    }
    conf = {
        "cfgNum": 1, "cfgVersion": "2.16.1", "cfgAuthor": "ScopeGate e2e", "cfgDate": str(int(time.time())),
        "authentication": "Demo", "userDB": "Same", "passwordDB": "Demo", "registerDB": "Null",
        "demoExportedVars": {"cn": "cn", "mail": "mail", "uid": "uid"},
        "portal": public_url.rstrip("/") + "/",
        "domain": "127.0.0.1", "cookieName": "lemonldap", "securedCookie": 0, "httpOnly": 1,
        "globalStorage": "Apache::Session::File", "globalStorageOptions": storage("sessions"),
        "persistentStorage": "Apache::Session::File", "persistentStorageOptions": storage("psessions"),
        "localSessionStorage": "Cache::FileCache",
        "localSessionStorageOptions": {"cache_root": str(folder / "cache"), "cache_depth": 3, "default_expires_in": 600, "namespace": "lemonldap-ng-sessions"},
        "locationRules": {}, "exportedHeaders": {}, "groups": {}, "exportedVars": {},
        "macros": {"_whatToTrace": "$uid"}, "whatToTrace": "_whatToTrace",
        "loginHistoryEnabled": 0, "notification": 0,
        "issuerDBOpenIDConnectActivation": 1,
        "oidcServiceMetaDataIssuer": public_url.rstrip("/"),
        "oidcServicePrivateKeySig": private, "oidcServicePublicKeySig": public, "oidcServiceKeyIdSig": "e2e",
        "oidcRPMetaDataOptions": {
            "llng-app": client("llng-app", oidcRPMetaDataOptionsRequirePKCE=1),
            "llng-service": client("llng-service", oidcRPMetaDataOptionsAllowClientCredentialsGrant=1),
        },
        "oidcRPMetaDataExportedVars": {"llng-app": {"email": "mail", "name": "cn"}, "llng-service": {}},
    }
    (folder / "conf" / "lmConf-1.json").write_text(json.dumps(conf, indent=1))
    ini = folder / "lemonldap-ng.ini"
    loglevel = os.environ.get("LLNG_LOG_LEVEL", "warn")
    ini.write_text(f"""[all]
logLevel = {loglevel}
checkTime = 1

[configuration]
type = File
dirName = {folder / "conf"}
localStorage = Cache::FileCache
localStorageOptions = {{ 'namespace' => 'lemonldap-ng-config', 'default_expires_in' => 600, 'cache_root' => '{folder / "cache"}', 'cache_depth' => 3 }}

[portal]
staticPrefix = /static
templateDir = /usr/share/lemonldap-ng/portal/templates
languages = en
""")
    return ini


if __name__ == "__main__":
    folder, port, public_url, redirect_uri, secret = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    ini = configure(folder, public_url, redirect_uri, secret)
    env = dict(os.environ, LLNG_DEFAULTCONFFILE=str(ini), SCOPEGATE_E2E_RECORD=str(folder / "received.jsonl"))
    os.execvpe("plackup", ["plackup", "-s", "HTTP::Server::PSGI", "--host", "127.0.0.1", "--port", port, "-E", "deployment", PSGI], env)
