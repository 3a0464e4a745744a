#!/bin/bash
# run-tests.sh BUILD_DIR — build the mcring Python binding against an
# out-of-tree build of libmcring and run every Python test against real
# memcached servers started here (and stopped on any exit).
#
#  1. the binding's own pytest suite (bindings/python/tests): pymemcache
#     and mcring side by side, cross reads/writes, placement against pylibmc
#     and the Ketama vectors, fork, threads, an agent's ring, gunicorn and
#     uWSGI pre-fork servers;
#  2. pymemcache's own tests/test_integration.py (3.5.2, from Debian's
#     python3-pymemcache, identical to the v3.5.2 tag) run with mcring's
#     clients in place of pymemcache's.
#
# The last line is "python: N passed, N failed"; the exit status is 0 only
# when nothing failed.
set -u

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 BUILD_DIR (an already-built build of the C library)" >&2
  exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
START=$(date +%s)

# ---- Debian dependencies ----------------------------------------------------
need=()
for p in python3-dev python3-setuptools python3-venv python3-pip \
         python3-pytest python3-pymemcache python3-pylibmc python3-six \
         memcached gunicorn uwsgi uwsgi-plugin-python3 openssl; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages (run as root to install): ${need[*]}" >&2
    echo "python: 0 passed, 1 failed"
    exit 1
  fi
  echo "installing: ${need[*]}"
  apt-get update -qq >/dev/null && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" \
      >/dev/null || { echo "apt-get failed"; echo "python: 0 passed, 1 failed"; exit 1; }
fi
if [ ! -e "$BUILD/lib/.libs/libmcring.so" ]; then
  echo "no $BUILD/lib/.libs/libmcring.so: build the C library first" >&2
  echo "python: 0 passed, 1 failed"
  exit 1
fi

# ---- scratch space and cleanup ----------------------------------------------
WORK=$(mktemp -d /tmp/mcring-py.XXXXXX)
PIDS=()
GROUPS_=()
cleanup() {
  # pytest runs in a process group of its own: whatever a test started
  # (gunicorn, uWSGI, mcring-agent) goes with it if the run is cut short.
  for pg in "${GROUPS_[@]}"; do
    kill -- "-$pg" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build the binding in a venv --------------------------------------------
# The source is copied so that pip's in-tree build leaves the checkout clean.
cp -r "$HERE" "$WORK/src"
rm -rf "$WORK/src/build" "$WORK/src"/*.egg-info
$PY -m venv --system-site-packages "$WORK/venv" >"$WORK/venv.log" 2>&1 || {
  cat "$WORK/venv.log"; echo "python: 0 passed, 1 failed"; exit 1; }
if ! (cd "$WORK/src" && MCRING_BUILD_DIR="$BUILD" MCRING_SRC_DIR="$TOP" \
      "$WORK/venv/bin/pip" install -q --no-build-isolation --no-index . \
      >"$WORK/build.log" 2>&1); then
  cat "$WORK/build.log"
  echo "python: 0 passed, 1 failed"
  exit 1
fi
VPY="$WORK/venv/bin/python"
echo "built the binding into $WORK/venv"

# ---- memcached servers -------------------------------------------------------
free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
USER_OPT=()
[ "$(id -u)" -eq 0 ] && USER_OPT=(-u root)
# start_memcached [extra memcached options]: starts one on a free port and
# sets MC_PORT. Not called in $(...): the pid must reach PIDS in this shell.
start_memcached() {
  local port pid i
  MC_PORT=
  for i in 1 2 3 4 5; do
    port=$(free_port)
    /usr/bin/memcached "${USER_OPT[@]}" -l 127.0.0.1 -p "$port" -U 0 -t 2 \
      -m 64 "$@" >/dev/null 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 50); do
      if $PY -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2).close()" 2>/dev/null; then
        MC_PORT=$port
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  return 1
}
no_memcached() {
  echo "memcached did not start"
  echo "python: 0 passed, 1 failed"
  exit 1
}
SERVERS=""
for i in 1 2 3 4; do
  start_memcached || no_memcached
  SERVERS="$SERVERS${SERVERS:+,}127.0.0.1:$MC_PORT"
done
start_memcached || no_memcached
PEER_PORT=$MC_PORT

# A TLS memcached, with a CA and a certificate for 127.0.0.1 made here.
T="$WORK/tls"
mkdir -p "$T"
if ! ( set -e
  cd "$T"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key -out ca.crt -days 2 -subj /CN=mcring-python-test-ca
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout server.key -out server.csr -subj /CN=127.0.0.1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out server.crt -days 2 -extfile ext ) >"$T/openssl.log" 2>&1; then
  cat "$T/openssl.log"; echo "python: 0 passed, 1 failed"; exit 1
fi
start_memcached -Z -o "ssl_chain_cert=$T/server.crt,ssl_key=$T/server.key" ||
  no_memcached
TLS_PORT=$MC_PORT
echo "memcached on $SERVERS and 127.0.0.1:$PEER_PORT; TLS on 127.0.0.1:$TLS_PORT"

# ---- the suites ---------------------------------------------------------------
export MCRING_TEST_SERVERS="$SERVERS"
export MCRING_TOP="$TOP"
export MCRING_BUILD_DIR="$BUILD"
export MCRING_WORK="$WORK"
export MCRING_TEST_TLS="127.0.0.1:$TLS_PORT"
export MCRING_TEST_TLS_CA="$T/ca.crt"
export PYTHONDONTWRITEBYTECODE=1

# run_group DIR CMD...: runs CMD in DIR in a new process group, remembered
# for cleanup (in this shell: no subshell, or cleanup would not see it).
run_group() {
  local dir=$1
  shift
  setsid bash -c 'cd "$1" && shift && exec "$@"' run_group "$dir" "$@" &
  local pid=$!
  GROUPS_+=("$pid")
  wait "$pid"
}

# Counts from a junit xml file: "passed failed skipped".
counts() {
  $PY - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1, 0)
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = f = e = s = 0
for x in suites:
    t += int(x.get("tests", 0)); f += int(x.get("failures", 0))
    e += int(x.get("errors", 0)); s += int(x.get("skipped", 0))
print(t - f - e - s, f + e, s)
EOF
}

echo "== binding suite (bindings/python/tests)"
run_group "$WORK" "$VPY" -m pytest -p no:cacheprovider -q -rsfE \
  --junitxml="$WORK/own.xml" "$HERE/tests"
read -r OWN_P OWN_F OWN_S < <(counts "$WORK/own.xml")

echo "== pymemcache 3.5.2 test_integration.py with mcring's clients"
PEER_SRC=/usr/lib/python3/dist-packages/pymemcache/test/test_integration.py
mkdir -p "$WORK/peer"
# Only the client import changes: pymemcache's Client -> mcring's.
sed 's/^from pymemcache.client.base import Client$/from mcring import Client/' \
  "$PEER_SRC" >"$WORK/peer/test_integration.py"
if ! grep -q '^from mcring import Client$' "$WORK/peer/test_integration.py"; then
  echo "could not switch test_integration.py to mcring.Client"
  OWN_F=$((OWN_F + 1))
fi
cp "$HERE/peer/conftest.py" "$WORK/peer/conftest.py"
run_group "$WORK/peer" "$VPY" -m pytest -p no:cacheprovider -q -rsfE \
  --junitxml="$WORK/peer.xml" --server 127.0.0.1 --port "$PEER_PORT" \
  --tls-server 127.0.0.1 --tls-port "$TLS_PORT" --tls-ca "$T/ca.crt" \
  test_integration.py
read -r PEER_P PEER_F PEER_S < <(counts "$WORK/peer.xml")
echo "peer suite: $PEER_P passed, $PEER_F failed, $PEER_S skipped"
echo "binding suite: $OWN_P passed, $OWN_F failed, $OWN_S skipped"
echo "duration: $(( $(date +%s) - START )) s"

P=$((OWN_P + PEER_P))
F=$((OWN_F + PEER_F))
echo "python: $P passed, $F failed"
[ "$F" -eq 0 ]
