#!/usr/bin/env bash
# ScopeGate's whole test suite: Swift unit and integration tests, then the end-to-end suite against
# three real IdPs (django-oauth-toolkit, idpyoidc, LemonLDAP::NG) with a real OAuth client (Authlib)
# and headless chromium.
#
# Needs: Swift 6.3, python3 (3.10+), and Debian's packages that scripts/install-test-deps.sh installs;
# PostgreSQL (Debian's) is started for the store tests by scripts/start-test-postgres.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> swift build"
swift build
echo "==> PostgreSQL for the store tests"
SCOPEGATE_TEST_POSTGRES_URL=$(bash scripts/start-test-postgres.sh)
export SCOPEGATE_TEST_POSTGRES_URL
echo "==> swift test"
swift test

echo "==> end-to-end suite (django-oauth-toolkit, idpyoidc and LemonLDAP::NG + Authlib + chromium)"
if [ ! -x e2e/.venv/bin/python ]; then
  python3 -m venv e2e/.venv
fi
e2e/.venv/bin/pip install --quiet --disable-pip-version-check -r e2e/requirements.txt
SCOPEGATE_BIN="$PWD/.build/debug/scopegate" e2e/.venv/bin/python -m pytest e2e -q -p no:cacheprovider
