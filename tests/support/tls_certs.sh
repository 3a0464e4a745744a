#!/bin/sh
# tls_certs.sh DIR — the certificates the TLS tests need, made afresh with
# the openssl command line (no key or certificate is kept in the tree):
#
#   ca.pem ca.key            the test CA
#   server.pem server.key    localhost, 127.0.0.1 and ::1, signed by the CA
#   client.pem client.key    a client certificate of the CA (mutual TLS)
#   other-ca.pem             a CA that signed nothing here
#   wrongname.pem/.key       signed by the CA for wrong.example only
#   expired.pem/.key         signed by the CA, expired yesterday
#   selfsigned.pem/.key      localhost, signed by itself
#
# P-256 keys: quick to make. Exits non-zero when any step fails.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

# shellcheck disable=SC2086
openssl req -x509 $ec -keyout ca.key -out ca.pem -subj /CN=mcring-test-ca \
  -days 2 -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
# shellcheck disable=SC2086
openssl req -x509 $ec -keyout other-ca.key -out other-ca.pem \
  -subj /CN=mcring-other-ca -days 2 \
  -addext basicConstraints=critical,CA:TRUE 2>/dev/null

# signed NAME CN SAN DAYS [EXTKEYUSAGE]: NAME.pem / NAME.key from the CA.
signed() {
  name=$1 cn=$2 san=$3 days=$4 eku=${5:-serverAuth}
  # shellcheck disable=SC2086
  openssl req $ec -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn" \
    2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$san" "$eku" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key \
    -CAcreateserial -out "$name.pem" -days "$days" -extfile "$name.ext" \
    2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

signed server localhost 'DNS:localhost,IP:127.0.0.1,IP:::1' 2
signed client mcring-test-client 'DNS:client' 2 clientAuth
signed wrongname wrong.example 'DNS:wrong.example' 2
signed expired localhost 'DNS:localhost,IP:127.0.0.1' -1

# shellcheck disable=SC2086
openssl req -x509 $ec -keyout selfsigned.key -out selfsigned.pem \
  -subj /CN=localhost -days 2 \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
chmod 0644 ./*.key
