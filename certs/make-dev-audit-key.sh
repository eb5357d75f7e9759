#!/usr/bin/env bash
# Makes a development audit signing key in certs/audit (ES256 by default; pass EdDSA to choose Ed25519):
# audit-signing-key.jwk (readable by its owner only) and audit-jwks.json. Running it again rotates the
# key and keeps the old public key in the JWKS. Never commit the key; .gitignore keeps it out.
set -euo pipefail
cd "$(dirname "$0")/.."
swift run -q scopegate keys generate --dir certs/audit --alg "${1:-ES256}"
