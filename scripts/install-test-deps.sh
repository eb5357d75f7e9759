#!/usr/bin/env bash
# Installs what the test suite needs beyond Swift and Python, from Debian's packages: the SQLite headers
# GRDB links against, the headless browser the waiting page is checked in, and LemonLDAP::NG's portal
# (one of the end-to-end suite's IdPs, run as a PSGI app with plackup) with the Perl modules its
# OpenID Connect issuer and its captcha plugin load at start-up.
set -euo pipefail
packages=(
  libsqlite3-dev chromium chromium-driver
  liblemonldap-ng-portal-perl libplack-perl libgd-securityimage-perl libimage-magick-perl libstring-random-perl
  libio-string-perl libcrypt-openssl-rsa-perl libcrypt-openssl-x509-perl libcrypt-openssl-bignum-perl
  libconvert-base32-perl libipc-run-perl libmime-tools-perl libio-socket-timeout-perl libunicode-string-perl
  libauthen-webauthn-perl
)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
