#!/bin/bash
# bench/python/run.sh BUILD_DIR — install the peers when missing (as
# root), build the Python binding in a temp dir, start 4 memcached
# servers, print bench.py's table, stop everything.
set -eu
BUILD=$(cd "$1" && pwd)
for p in python3-dev python3-setuptools python3-pymemcache python3-pylibmc memcached; do
  dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q "$p"; } >/dev/null
done
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d /tmp/mcring-pybench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT
cp -r "$TOP/bindings/python" "$WORK/src"
rm -rf "$WORK/src/build"
(cd "$WORK/src" && MCRING_BUILD_DIR="$BUILD" MCRING_SRC_DIR="$TOP" \
  /usr/bin/python3 setup.py -q build_ext --inplace >/dev/null)
U=(); [ "$(id -u)" -eq 0 ] && U=(-u root)
S=""
for i in 1 2 3 4; do
  port=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  /usr/bin/memcached "${U[@]}" -l 127.0.0.1 -p "$port" -U 0 -t 1 & PIDS+=($!)
  S="$S${S:+,}127.0.0.1:$port"
done
sleep 0.5
MCRING_BENCH_SERVERS=$S PYTHONPATH="$WORK/src" /usr/bin/python3 "$HERE/bench.py"
