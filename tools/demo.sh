#!/usr/bin/env bash
# tools/demo.sh BUILD_DIR [--duration SECONDS] — the demo of mcring's main
# job, run by `bash tools/run demo`: 3 local memcached, the fake ElastiCache
# configuration endpoint, mcring-agent and a pre-forked master with 8
# workers doing verified get/set traffic through libmcring while a node is
# added, a node is removed and the agent is killed with SIGKILL and
# restarted. The program tools/demo/demo does all of it and stops every
# process it started (also on Ctrl-C); this script only builds what it
# needs (tests/fakecfg is a check program, so `make` alone skips it) and
# runs it. Exit status: the demo's (0 when every check passed).
set -euo pipefail
build=${1:?usage: demo.sh BUILD_DIR [--duration SECONDS]}
shift
build=$(cd "$build" && pwd)
make -C "$build" -j"$(nproc 2>/dev/null || echo 2)" mcring-agent tests/fakecfg \
  tools/demo/demo >/dev/null
memcached=$(command -v memcached || echo /usr/bin/memcached)
exec "$build/tools/demo/demo" --build-dir "$build" --memcached "$memcached" "$@"
