#!/usr/bin/env python3
"""Verify an exported ScopeGate audit log without ScopeGate: every entry's signature against the JWKS,
and the chain (seq counts up from 1; prev is the SHA-256 of the exact previous entry).

    scopegate audit export > audit.jsonl
    python3 verify-audit-log.py audit.jsonl https://login.example.com/_scopegate/audit/jwks.json

Needs joserfc (pip install joserfc). Exits non-zero at the first bad entry.
"""
import base64
import hashlib
import json
import sys
import urllib.request

from joserfc import jws
from joserfc.jwk import KeySet


def b64url_sha256(text):
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


log, jwks_url = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(jwks_url) as response:
    keys = KeySet.import_key_set(json.load(response))
previous, seq = None, 0
with open(log) as lines:
    for seq, line in enumerate(lines, start=1):
        token = json.loads(line)
        try:
            entry = json.loads(jws.deserialize_compact(token, keys, algorithms=["ES256", "EdDSA"]).payload)
        except Exception as error:
            sys.exit(f"entry {seq}: the signature does not verify ({error})")
        expected_prev = b64url_sha256(previous) if previous else None
        if entry["seq"] != seq or entry["prev"] != expected_prev:
            sys.exit(f"entry {seq}: the chain is broken (seq {entry['seq']})")
        previous = token
print(f"{seq} entries verified")
