# fpm_cluster.sh — sourced by tests/fpm_ring.sh and tools/demo_php.sh: a
# small cluster that PHP-FPM children reach through mcring-agent's ring.
#
# cluster_start starts three memcached of its own, the fake ElastiCache
# configuration endpoint (tests/fakecfg, the exact wire format) listing
# nodes 0 and 1, the built mcring-agent following it every 0.2 s into
# $DIR/ring (ketama-libmemcached: php-memcached's placement), and
# php-fpm8.2 with a `pm = static` pool of $CHILDREN children recycled every
# $MAX_REQUESTS requests (0: never), whose page keeps a persistent client
# on the ring and sets, gets, or gets and fills on a miss ("cache") one
# key. `nodes I...` changes the endpoint's list,
# `wait_ring N` waits for the agent's ring of N nodes, `request OP K` and
# `batch OP FIRST LAST` drive the page. Everything started is stopped on
# exit (cleanup, trapped).
#
# The caller sets SO (the extension), BUILD (a libmcring build with
# mcring-agent, mcring and tests/fakecfg), DIR (a scratch directory),
# CHILDREN, MAX_REQUESTS and PAR (requests at a time), and may set
# FPM_TIMEOUT_MS (the page's connect and poll timeouts, default 500).

PHP=php8.2
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do
    kill -CONT "$p" 2>/dev/null
    kill "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null
  done
  rm -rf "$DIR"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in agent fpm cfg; do
    [ -s "$DIR/$f.log" ] && echo "-- $f.log" && tail -5 "$DIR/$f.log"
  done
  exit 1
}

free_port() {
  $PHP -n -r '$s = stream_socket_server("tcp://127.0.0.1:0");
    echo explode(":", stream_socket_get_name($s, false))[1];'
}
answers() { # port: 0 once memcached answers
  $PHP -n -r '$s = @fsockopen("127.0.0.1", (int)$argv[1], $e, $m, 0.2);
    if (!$s) exit(1); fwrite($s, "version\r\n");
    exit(str_starts_with((string)fgets($s), "VERSION") ? 0 : 1);' "$1"
}

node_line() { echo "node$1.test|127.0.0.1|${PORT[$1]}"; }

nodes() { # indexes of the nodes the endpoint lists
  : >"$DIR/nodes.tmp"
  for i in "$@"; do node_line "$i" >>"$DIR/nodes.tmp"; done
  mv "$DIR/nodes.tmp" "$DIR/nodes"
}

# ring_nodes: how many nodes the published ring has (0: none yet)
ring_nodes() {
  "$BUILD/mcring" --ring-dir "$RING" ring 2>/dev/null |
    awk '/^# ring/ { r = 1 } r && $1 == "nodes" { n = $2 } END { print n + 0 }'
}

wait_ring() { # n: until the agent published a ring of n nodes
  for _ in $(seq 100); do
    [ "$(ring_nodes)" -eq "$1" ] && return 0
    sleep 0.1
  done
  fail "the agent did not publish a ring of $1 nodes"
}

request() { # op k: one line "pid nodes result code ms start", or "NONE"
  local out
  out=$(SCRIPT_FILENAME="$DIR/page.php" REQUEST_METHOD=GET QUERY_STRING="op=$1&k=$2" \
    timeout 20 cgi-fcgi -bind -connect "127.0.0.1:$PORT_FPM" 2>&1 | tr -d '\r' |
    grep -E '^[0-9]+ [0-9]+ ')
  echo "${out:-NONE $1 $2}"
}

batch() { # op first last: the requests, PAR at a time, into stdout
  seq "$2" "$3" | xargs -P $PAR -I{} bash -c "request $1 {}"
}

# cluster_start: the cluster, running; sets PORT[], MCD[] (memcached
# ports and pids), CFG_PID, AGENT_PID, AGENT_START, RING, FPM_PID, PORT_FPM.
cluster_start() {
  ROOT=0
  [ "$(id -u)" -eq 0 ] && ROOT=1
  MC_USER=()
  [ $ROOT -eq 1 ] && MC_USER=(-u nobody)
  PORT=()
  MCD=()
  for i in 0 1 2; do
    for _ in 1 2 3 4 5; do
      p=$(free_port)
      memcached "${MC_USER[@]}" -l 127.0.0.1 -p "$p" -U 0 -m 64 -t 1 &
      pid=$!
      for _ in $(seq 50); do
        answers "$p" && break
        sleep 0.1
      done
      if answers "$p"; then
        PORT[i]=$p
        MCD[i]=$pid
        PIDS+=("$pid")
        break
      fi
      kill "$pid" 2>/dev/null
    done
    [ -n "${PORT[i]:-}" ] || fail "could not start memcached $i"
  done

  nodes 0 1
  "$BUILD/tests/fakecfg" --nodes "$DIR/nodes" --port-file "$DIR/cfg.port" \
    >/dev/null 2>"$DIR/cfg.log" &
  CFG_PID=$!
  PIDS+=("$CFG_PID")
  for _ in $(seq 50); do
    [ -s "$DIR/cfg.port" ] && break
    sleep 0.1
  done
  [ -s "$DIR/cfg.port" ] || fail "the fake endpoint did not start"
  CFG="127.0.0.1:$(cat "$DIR/cfg.port")"

  RING="$DIR/ring"
  GROUP=()
  [ $ROOT -eq 1 ] && GROUP=(--group nogroup)
  "$BUILD/mcring-agent" --config /dev/null --elasticache "$CFG" \
    --ring-dir "$RING" --distribution ketama-libmemcached --interval 0.2 \
    "${GROUP[@]}" >"$DIR/agent.log" 2>&1 &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  AGENT_START=$SECONDS

  wait_ring 2

  PORT_FPM=$(free_port)
  cat >"$DIR/page.php" <<'EOF'
<?php
$m = new Mcring\Memcached('ring');
if ($m->isPristine()) {
    $m->setOptions([Mcring\Memcached::OPT_MCRING_RING_DIR => getenv('MCRING_RING'),
                    Mcring\Memcached::OPT_CONNECT_TIMEOUT => (int)getenv('MCRING_TIMEOUT_MS'),
                    Mcring\Memcached::OPT_POLL_TIMEOUT => (int)getenv('MCRING_TIMEOUT_MS')]);
}
parse_str($_SERVER['QUERY_STRING'] ?? '', $q);
$key = 'ring_' . $q['k'];
$t0 = microtime(true);
if (($q['op'] ?? '') === 'set') {
    $out = $m->set($key, "v{$q['k']}") ? 'stored' : 'error';
} elseif (($q['op'] ?? '') === 'cache') { // read, and fill on a miss
    $v = $m->get($key);
    $out = $v === "v{$q['k']}" ? 'hit' : ($v === false ? 'miss' : 'WRONG');
    if ($v === false && $m->getResultCode() == Mcring\Memcached::RES_NOTFOUND) {
        $m->set($key, "v{$q['k']}");
    }
} else {
    $v = $m->get($key);
    $out = $v === false ? 'miss' : $v;
}
printf("%d %d %s %d %d %.6f\n", getmypid(), count($m->getServerList()), $out,
       $m->getResultCode(), (microtime(true) - $t0) * 1000, $t0);
EOF
  cat >"$DIR/fpm.conf" <<EOF
[global]
error_log = $DIR/fpm.log
pid = $DIR/fpm.pid
daemonize = no
[pool]
listen = 127.0.0.1:$PORT_FPM
pm = static
pm.max_children = $CHILDREN
pm.max_requests = $MAX_REQUESTS
clear_env = no
catch_workers_output = yes
EOF
  RUN_AS=()
  if [ $ROOT -eq 1 ]; then
    printf 'user = nobody\ngroup = nogroup\n' >>"$DIR/fpm.conf"
    RUN_AS=(-R)
  fi
  MCRING_RING=$RING MCRING_TIMEOUT_MS=${FPM_TIMEOUT_MS:-500} /usr/sbin/php-fpm8.2 "${RUN_AS[@]}" -n -y "$DIR/fpm.conf" \
    -d "extension=$SO" -d display_errors=stderr -F &
  FPM_PID=$!
  PIDS+=("$FPM_PID")
  for _ in $(seq 100); do
    [ "$(pgrep -P $FPM_PID | wc -l)" -ge "$CHILDREN" ] && break
    sleep 0.1
  done
  [ "$(pgrep -P $FPM_PID | wc -l)" -eq "$CHILDREN" ] || fail "pool did not start $CHILDREN children"
  export -f request
  export DIR PORT_FPM
}
