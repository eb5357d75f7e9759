#!/usr/bin/env bash
# ScopeGate's whole test suite: Swift unit and integration tests, then the end-to-end suite against a
# real IdP (django-oauth-toolkit) with a real OAuth client (Authlib) and headless chromium.
#
# Needs: Swift 6.3, python3 (3.10+), Debian's chromium and chromium-driver (scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> swift build"
swift build
echo "==> swift test"
swift test

echo "==> end-to-end suite (django-oauth-toolkit + Authlib + chromium)"
if [ ! -x e2e/.venv/bin/python ]; then
  python3 -m venv e2e/.venv
fi
e2e/.venv/bin/pip install --quiet --disable-pip-version-check -r e2e/requirements.txt
SCOPEGATE_BIN="$PWD/.build/debug/scopegate" e2e/.venv/bin/python -m pytest e2e -q -p no:cacheprovider
