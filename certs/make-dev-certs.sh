#!/usr/bin/env bash
# Makes development TLS material with the openssl command line: a throwaway CA, and a certificate for
# localhost / 127.0.0.1 signed by it. Keys are written with owner-only permissions and never committed
# (certs/.gitignore). For production, use certificates from your own CA.
#
# Usage: certs/make-dev-certs.sh [output-directory]   (default: certs/dev)
set -euo pipefail
out="${1:-$(dirname "$0")/dev}"
mkdir -p "$out"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=ScopeGate development CA" -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=localhost" -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
cat > "$out/server.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
EXT
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -days 30 -extfile "$out/server.ext" -out "$out/server.crt" 2>/dev/null
rm -f "$out/server.csr" "$out/server.ext"
chmod 600 "$out"/*.key
echo "wrote $out/ca.crt, $out/server.crt and $out/server.key (valid 30 days)"
