#!/usr/bin/env bash
# tools/demo.sh BUILD_DIR — a short demo of the mcring client: starts a
# local memcached on a free loopback port, drives it with the `mcring` tool
# (set, get, a miss, a bad key, stats, version) and stops it again.
set -euo pipefail
build=${1:?usage: demo.sh BUILD_DIR}
mcring=$build/mcring
memcached=$(command -v memcached || echo /usr/bin/memcached)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=()
[ "$(id -u)" -eq 0 ] && user=(-u root)
"$memcached" -l 127.0.0.1 -p "$port" -U 0 "${user[@]}" &
mc_pid=$!
trap 'kill $mc_pid 2>/dev/null; wait $mc_pid 2>/dev/null || true' EXIT
export MCRING_SERVERS=127.0.0.1:$port
for _ in $(seq 50); do "$mcring" version >/dev/null 2>&1 && break; sleep 0.1; done

step() { printf '\n$ %s\n' "$*"; "$@" && rc=0 || rc=$?; printf '\n(exit %d)\n' "$rc"; }
echo "memcached $("$mcring" version) on $MCRING_SERVERS"
step "$mcring" set greeting "hello from mcring" --ttl 60 --flags 7
step "$mcring" get greeting
step "$mcring" get no-such-key
step "$mcring" set "bad key" value
echo 'a value read from stdin' | step "$mcring" set piped -
step "$mcring" get piped
step "$mcring" delete greeting
step "$mcring" get greeting
printf '\n$ %s stats | grep -E "^(curr_items|cmd_get|cmd_set|get_hits|get_misses) "\n' "$mcring"
"$mcring" stats | grep -E '^(curr_items|cmd_get|cmd_set|get_hits|get_misses) '
echo
echo "demo finished"
