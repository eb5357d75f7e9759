#!/usr/bin/env bash
# Installs what the test suite needs beyond Swift and Python, from Debian's packages: the SQLite headers
# GRDB links against, and the headless browser the waiting page is checked in.
set -euo pipefail
packages=(libsqlite3-dev chromium chromium-driver)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
