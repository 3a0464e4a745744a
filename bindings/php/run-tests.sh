#!/bin/bash
# run-tests.sh BUILD_DIR — build the mcring PHP extension against an
# out-of-tree build of libmcring and run every PHP test.
#
#  1. installs its Debian dependencies when missing (as root);
#  2. builds the extension in a temporary directory (phpize8.2, configure
#     --with-mcring=BUILD_DIR, make), never touching the source tree;
#  3. starts three memcached on free loopback ports and one speaking only
#     TLS (stopped on any exit);
#  4. runs the extension's own .phpt tests (tests/) with php-memcached
#     loaded in the same process, for the side-by-side tests,
#     tests/fpm_e2e.sh (a PHP-FPM pool of 16 children driven by cgi-fcgi)
#     and tests/fpm_ring.sh (FPM children following mcring-agent's ring
#     while nodes are added, removed, hung and killed);
#  5. runs php-memcached 3.2.0's own .phpt suite twice: with
#     php-memcached itself (the baseline), then against mcring registered
#     as \Memcached with ext/memcached not loaded. A peer test counts only
#     when the baseline passes it and it is not in
#     tests/peer-known-failures.txt (each line: the test and why it fails
#     with mcring); a listed test that passes is reported, not failed.
#     The suite comes from $PHP_MEMCACHED_SRC (a php-memcached git
#     directory or source tree) or the fetched mirror; without either it
#     is skipped, with the reason printed.
#
# Last line: "php: N passed, N failed"; exit status 0 only when nothing
# failed.
set -u

if [ $# -ne 1 ] || [ ! -f "$1/Makefile" ]; then
  echo "usage: $0 BUILD_DIR (an already-built build of libmcring)" >&2
  echo "php: 0 passed, 1 failed"
  exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
PHP=php8.2
RUN_TESTS=/usr/lib/php/20220829/build/run-tests.php
START=$(date +%s)
PASSED=0
FAILED=0

finish() {
  echo "duration: $(($(date +%s) - START)) s"
  echo "php: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

# ---- dependencies -------------------------------------------------------
DEPS="php8.2-dev php8.2-cli php8.2-fpm php8.2-memcached php8.2-igbinary
php8.2-msgpack memcached libfcgi-bin zlib1g-dev libzstd-dev"
missing=""
for p in $DEPS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  if [ "$(id -u)" -ne 0 ]; then
    echo "not root: cannot install$missing"
    FAILED=1
    finish
  fi
  apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null ||
    { echo "apt-get install failed"; FAILED=1; finish; }
fi

WORK=$(mktemp -d /tmp/mcring-php.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build --------------------------------------------------------------
mkdir -p "$WORK/ext"
cp "$HERE"/config.m4 "$HERE"/*.c "$HERE"/*.h "$WORK/ext/"
if ! (cd "$WORK/ext" && phpize8.2 && ./configure --with-php-config=php-config8.2 \
  --with-mcring="$BUILD" && make -j2) >"$WORK/build.log" 2>&1; then
  tail -40 "$WORK/build.log"
  echo "build of the extension failed"
  FAILED=1
  finish
fi
SO="$WORK/ext/modules/mcring.so"
echo "built $SO against $BUILD"

# ---- servers ------------------------------------------------------------
free_port() {
  $PHP -n -r '$s = stream_socket_server("tcp://127.0.0.1:0");
    echo explode(":", stream_socket_get_name($s, false))[1];'
}
up() { # port: 0 once memcached answers
  $PHP -n -r '$s = @fsockopen("127.0.0.1", (int)$argv[1], $e, $m, 0.2);
    if (!$s) exit(1); fwrite($s, "version\r\n");
    exit(str_starts_with((string)fgets($s), "VERSION") ? 0 : 1);' "$1"
}
MC_USER=()
[ "$(id -u)" -eq 0 ] && MC_USER=(-u nobody)
PORTS=()
for i in 1 2 3; do
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    memcached "${MC_USER[@]}" -l 127.0.0.1 -p "$port" -U 0 -m 64 -t 1 &
    pid=$!
    for _ in $(seq 50); do
      up "$port" && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if up "$port"; then
      PIDS+=("$pid")
      PORTS+=("$port")
      break
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
done
if [ "${#PORTS[@]}" -ne 3 ]; then
  echo "could not start three memcached"
  FAILED=1
  finish
fi
DEAD_PORT=$(free_port) # nothing listens there
export MCRING_TEST_SERVERS="127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"
export MCRING_TEST_DEAD="127.0.0.1:$DEAD_PORT"
export MCRING_TEST_SO="$SO"
echo "memcached on ${PORTS[*]}; dead port $DEAD_PORT"

# A memcached that speaks only TLS (-Z), with certificates made afresh by
# the C suite's tests/support/tls_certs.sh (011_tls.phpt). It runs as the
# invoking user: it must read the key in WORK (mode 700).
export MCRING_TEST_TLS_DIR="$WORK/tls"
if ! sh "$HERE/../../tests/support/tls_certs.sh" "$MCRING_TEST_TLS_DIR" \
    >"$WORK/tls.log" 2>&1; then
  tail -5 "$WORK/tls.log"
  echo "cannot make the TLS certificates"
  FAILED=1
  finish
fi
listening() { # port: 0 once something accepts TCP there
  $PHP -n -r 'exit(@fsockopen("127.0.0.1", (int)$argv[1], $e, $m, 0.2) ? 0 : 1);' "$1"
}
TLS_USER=()
[ "$(id -u)" -eq 0 ] && TLS_USER=(-u root)
port=$(free_port)
memcached "${TLS_USER[@]}" -l 127.0.0.1 -p "$port" -U 0 -m 64 -t 1 -Z \
  -o "ssl_chain_cert=$MCRING_TEST_TLS_DIR/server.pem,ssl_key=$MCRING_TEST_TLS_DIR/server.key" \
  >"$WORK/tls-memcached.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 50); do
  listening "$port" && break
  sleep 0.1
done
export MCRING_TEST_TLS_SERVER="127.0.0.1:$port"

# An agent publishing a ring of the first two servers from a file the
# ring-directory test rewrites. Its directory sits in WORK (mode 700, ours)
# so that libmcring's ownership checks accept it.
export MCRING_TEST_RING_FILE="$WORK/ring.servers"
export MCRING_TEST_RING_DIR="$WORK/ring"
printf '127.0.0.1:%s\n127.0.0.1:%s\n' "${PORTS[0]}" "${PORTS[1]}" >"$MCRING_TEST_RING_FILE"
mkdir -m 755 "$MCRING_TEST_RING_DIR"
"$BUILD/mcring-agent" --file "$MCRING_TEST_RING_FILE" --distribution ketama-libmemcached \
  --ring-dir "$MCRING_TEST_RING_DIR" --interval 0.2 --stats-slots 0 \
  --log-level warning >"$WORK/agent.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
  [ -n "$(ls "$MCRING_TEST_RING_DIR" 2>/dev/null)" ] && break
  sleep 0.1
done
# 014_ring_owner.phpt runs an agent of its own, as nobody (needs root).
export MCRING_TEST_AGENT="$BUILD/mcring-agent"

# run_phpt DIR OUT [php args...]: runs the .phpt tests of DIR one at a
# time (they share the servers); writes "RESULT name" lines to OUT.
run_phpt() {
  local dir=$1 out=$2
  shift 2
  TEST_PHP_EXECUTABLE=$(command -v $PHP) NO_INTERACTION=1 \
    $PHP -n "$RUN_TESTS" -q --set-timeout 60 -p "$(command -v $PHP)" \
    "$@" "$dir" >"$out.log" 2>&1
  # progress lines end in \r and results are coloured: one result a line
  tr '\r' '\n' <"$out.log" | sed -E 's/\x1b\[[0-9;]*m//g' |
    sed -n -E 's#^(PASS|FAIL|SKIP|BORK|LEAK|XFAIL|WARN|XLEAK) .*\[([^]]*/)?([^]/]+\.phpt)\]( .*)?$#\1 \3#p' |
    sort -u -k2 >"$out"
}

# ---- the extension's own tests ------------------------------------------
mkdir -p "$WORK/own"
cp "$HERE"/tests/*.phpt "$HERE"/tests/*.inc "$WORK/own/"
run_phpt "$WORK/own" "$WORK/own.res" -d "extension=$SO"
while read -r res name; do
  case $res in
    PASS) PASSED=$((PASSED + 1)) ;;
    SKIP) # run-tests.sh provides everything a test needs but root: a skip
      # is a fault, unless the test needs root and this run is not root's
      why=$(tr '\r' '\n' <"$WORK/own.res.log" | sed -E 's/\x1b\[[0-9;]*m//g' |
        grep -h "^SKIP.*$name" | head -1)
      if [ "$(id -u)" -ne 0 ] && [[ $why == *"reason: needs root"* ]]; then
        echo "skipped (not root): $why"
      else
        FAILED=$((FAILED + 1))
        echo "FAILED: $name skipped: $why"
      fi ;;
    *)
      FAILED=$((FAILED + 1))
      echo "FAILED: $name ($res)"
      diff="$WORK/own/${name%.phpt}.diff"
      [ -f "$diff" ] && head -40 "$diff" && echo
      ;;
  esac
done <"$WORK/own.res"
own_total=$(wc -l <"$WORK/own.res")
expected_own=$(ls "$HERE"/tests/*.phpt | wc -l)
if [ "$own_total" -ne "$expected_own" ]; then
  echo "own tests: $own_total results for $expected_own tests"
  tail -20 "$WORK/own.res.log"
  FAILED=$((FAILED + expected_own - own_total))
fi
echo "own tests: $PASSED passed, $FAILED failed of $own_total"

# ---- PHP-FPM end to end -------------------------------------------------
if bash "$HERE/tests/fpm_e2e.sh" >"$WORK/fpm.log" 2>&1; then
  PASSED=$((PASSED + 1))
  sed 's/^/fpm: /' "$WORK/fpm.log"
else
  FAILED=$((FAILED + 1))
  echo "FAILED: fpm_e2e.sh"
  sed 's/^/fpm: /' "$WORK/fpm.log" | tail -20
fi

if MCRING_TEST_BUILD=$BUILD bash "$HERE/tests/fpm_ring.sh" >"$WORK/fpmring.log" 2>&1; then
  PASSED=$((PASSED + 1))
  sed 's/^/fpm ring: /' "$WORK/fpmring.log"
else
  FAILED=$((FAILED + 1))
  echo "FAILED: fpm_ring.sh"
  sed 's/^/fpm ring: /' "$WORK/fpmring.log" | tail -20
fi

# ---- php-memcached's own suite ------------------------------------------
PEER_GIT=""
for g in "${PHP_MEMCACHED_SRC:-}" /work/.mirror/php-memcached-dev+php-memcached/repo; do
  [ -n "$g" ] || continue
  if [ -d "$g/tests" ]; then
    cp -r "$g/tests" "$WORK/peer"
    PEER_GIT=$g
    break
  fi
  if git --git-dir="$g" rev-parse -q --verify v3.2.0 >/dev/null 2>&1; then
    mkdir -p "$WORK/peer"
    git --git-dir="$g" archive v3.2.0 tests | tar -x -C "$WORK/peer" --strip-components=1
    PEER_GIT=$g
    break
  fi
done
if [ -z "$PEER_GIT" ]; then
  echo "skipped: php-memcached's suite (no source: set PHP_MEMCACHED_SRC to a" \
    "php-memcached 3.2.0 tree or git directory)"
  finish
fi
# Point the suite at our first server, and let its skip check accept the
# class under either extension (it asks for extension "memcached").
cat >"$WORK/peer/config.inc.local" <<EOF
<?php
define("MEMC_SERVER_HOST", "127.0.0.1");
define("MEMC_SERVER_PORT", ${PORTS[0]});
EOF
sed -i 's/!extension_loaded("memcached")/!class_exists("Memcached")/' \
  "$WORK/peer/skipif.inc" "$WORK"/peer/*.phpt
rm -rf "$WORK/peer/experimental"
cp -r "$WORK/peer" "$WORK/peer-mcring"
run_phpt "$WORK/peer" "$WORK/peer-base.res"
run_phpt "$WORK/peer-mcring" "$WORK/peer-mcring.res" -n -d extension=igbinary \
  -d extension=msgpack -d "extension=$SO" -d mcring.alias_memcached=1
KNOWN="$HERE/tests/peer-known-failures.txt"
base_pass=0 peer_pass=0 peer_fail=0 known_fail=0 known_pass=0
while read -r res name; do
  [ "$res" = PASS ] || continue
  base_pass=$((base_pass + 1))
  mres=$(awk -v n="$name" '$2 == n { print $1 }' "$WORK/peer-mcring.res")
  if grep -q "^$name " "$KNOWN" 2>/dev/null; then
    if [ "$mres" = PASS ]; then
      known_pass=$((known_pass + 1))
      echo "peer: $name is listed as failing but passes"
    else
      known_fail=$((known_fail + 1))
    fi
    continue
  fi
  if [ "$mres" = PASS ]; then
    peer_pass=$((peer_pass + 1))
  else
    peer_fail=$((peer_fail + 1))
    echo "FAILED peer: $name (${mres:-no result})"
    diff="$WORK/peer-mcring/${name%.phpt}.diff"
    [ -f "$diff" ] && head -20 "$diff" && echo
  fi
done <"$WORK/peer-base.res"
echo "peer suite: php-memcached 3.2.0 passes $base_pass of $(wc -l <"$WORK/peer-base.res");" \
  "with mcring $((peer_pass + known_pass)) of those pass;" \
  "$known_fail known failures (tests/peer-known-failures.txt), $peer_fail unexpected"
PASSED=$((PASSED + peer_pass))
FAILED=$((FAILED + peer_fail))
finish
