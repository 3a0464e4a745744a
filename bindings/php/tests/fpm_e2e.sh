#!/bin/bash
# fpm_e2e.sh — Mcring\Memcached under a real PHP-FPM pool.
#
# php-fpm8.2 with a `pm = static` pool of 16 children on a free loopback
# port serves a page that, like a typical site, creates a persistent
# client and calls addServer for every node on every request, then sets or
# gets a key. cgi-fcgi (libfcgi-bin) drives requests, at most 8 at a time.
# Checked: every value read equals the value written; each child built its
# client once (isPristine true on one request per pid at most); memcached's
# curr_connections grew by at most children x 1 per node however many
# requests ran; a child killed with SIGKILL does no harm to the others.
#
# Needs MCRING_TEST_SO and MCRING_TEST_SERVERS (run-tests.sh sets both).
# Prints what it checked; exit 0 when everything held.
set -u
CHILDREN=16
REQUESTS=400
PAR=8
SO=${MCRING_TEST_SO:?}
SERVERS=${MCRING_TEST_SERVERS:?}
PHP=php8.2
DIR=$(mktemp -d /tmp/mcring-fpm.XXXXXX)
chmod 755 "$DIR"
FPM_PID=""
cleanup() {
  if [ -n "$FPM_PID" ]; then
    kill "$FPM_PID" 2>/dev/null
    wait "$FPM_PID" 2>/dev/null
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  [ -f "$DIR/fpm.log" ] && tail -5 "$DIR/fpm.log"
  exit 1
}

PORT=$($PHP -n -r '$s = stream_socket_server("tcp://127.0.0.1:0");
  echo explode(":", stream_socket_get_name($s, false))[1];')

cat >"$DIR/page.php" <<'EOF'
<?php
$m = new Mcring\Memcached('pool');
$pristine = $m->isPristine();
foreach (explode(',', getenv('MCRING_TEST_SERVERS')) as $s) {
    [$h, $p] = explode(':', $s);
    $m->addServer($h, (int)$p); // on every request, as sites do
}
parse_str($_SERVER['QUERY_STRING'] ?? '', $q);
$key = 'fpm_' . $q['k'];
if (($q['op'] ?? '') === 'set') {
    $ok = $m->set($key, ['n' => (int)$q['k'], 's' => str_repeat('x', (int)$q['k'] % 50)]);
    $out = $ok ? 'stored' : 'error ' . $m->getResultCode();
} else {
    $v = $m->get($key);
    $out = $v === false ? 'miss ' . $m->getResultCode() : json_encode($v);
}
echo getmypid(), ' ', $pristine ? 'new' : 'kept', ' ', $out, "\n";
EOF

RUN_AS=()
[ "$(id -u)" -eq 0 ] && RUN_AS=(-R)
cat >"$DIR/fpm.conf" <<EOF
[global]
error_log = $DIR/fpm.log
pid = $DIR/fpm.pid
daemonize = no
[pool]
listen = 127.0.0.1:$PORT
pm = static
pm.max_children = $CHILDREN
clear_env = no
catch_workers_output = yes
EOF
if [ "$(id -u)" -eq 0 ]; then
  printf 'user = nobody\ngroup = nogroup\n' >>"$DIR/fpm.conf"
fi

curr_connections() { # total curr_connections over the servers
  $PHP -n -r '$t = 0;
    foreach (explode(",", getenv("MCRING_TEST_SERVERS")) as $s) {
      [$h, $p] = explode(":", $s);
      $f = fsockopen($h, (int)$p); fwrite($f, "stats\r\n");
      while (($l = fgets($f)) !== false && trim($l) !== "END")
        if (preg_match("/^STAT curr_connections (\d+)/", $l, $m)) $t += $m[1] - 1;
    }
    echo $t;'
}

BEFORE=$(curr_connections)
MCRING_TEST_SERVERS=$SERVERS /usr/sbin/php-fpm8.2 "${RUN_AS[@]}" -n -y "$DIR/fpm.conf" \
  -d "extension=$SO" -d display_errors=stderr -F &
FPM_PID=$!
for _ in $(seq 100); do
  [ "$(ls /proc/$FPM_PID/task 2>/dev/null | wc -l)" -gt 0 ] &&
    [ "$(pgrep -P $FPM_PID | wc -l)" -ge "$CHILDREN" ] && break
  sleep 0.1
done
[ "$(pgrep -P $FPM_PID | wc -l)" -eq "$CHILDREN" ] || fail "pool did not start $CHILDREN children"

request() { # op k
  SCRIPT_FILENAME="$DIR/page.php" REQUEST_METHOD=GET QUERY_STRING="op=$1&k=$2" \
    cgi-fcgi -bind -connect "127.0.0.1:$PORT" 2>&1 | tr -d '\r' | grep -E '^[0-9]+ '
}
export -f request
export DIR PORT

# writes, then reads of every key, 8 requests at a time
seq 1 $((REQUESTS / 2)) | xargs -P $PAR -I{} bash -c 'request set {}' >"$DIR/sets"
seq 1 $((REQUESTS / 2)) | xargs -P $PAR -I{} bash -c 'request get {}' >"$DIR/gets"
stored=$(grep -c ' stored' "$DIR/sets")
[ "$stored" -eq $((REQUESTS / 2)) ] || fail "$stored of $((REQUESTS / 2)) sets stored"
# every get returns the value written for its key
bad=$($PHP -n -r '$got = [];
  foreach (file($argv[1]) as $l) { $got[] = trim(explode(" ", trim($l), 3)[2] ?? ""); }
  $bad = 0;
  for ($k = 1; $k <= (int)$argv[2]; $k++) {
    $want = json_encode(["n" => $k, "s" => str_repeat("x", $k % 50)]);
    if (!in_array($want, $got, true)) $bad++;
  }
  echo $bad;' "$DIR/gets" $((REQUESTS / 2)))
[ "$bad" -eq 0 ] || fail "$bad values read back wrong or missing"
echo "values: $((REQUESTS / 2)) written, all read back equal through $CHILDREN children"

pids=$(cat "$DIR/sets" "$DIR/gets" | awk '{print $1}' | sort -u | wc -l)
dup=$(cat "$DIR/sets" "$DIR/gets" | awk '$2 == "new" {print $1}' | sort | uniq -d | wc -l)
[ "$dup" -eq 0 ] || fail "$dup children built their client more than once"
echo "children: $pids served requests, each built its client once"

NODES=$(echo "$SERVERS" | tr ',' '\n' | wc -l)
AFTER=$(curr_connections)
grew=$((AFTER - BEFORE))
[ "$grew" -le $((CHILDREN * NODES)) ] ||
  fail "curr_connections grew by $grew over $REQUESTS requests (bound $((CHILDREN * NODES)))"
echo "connections: grew by $grew for $REQUESTS requests (bound $CHILDREN x $NODES = $((CHILDREN * NODES)))"

# kill -9 one child: the pool replaces it and the others keep serving
victim=$(pgrep -P $FPM_PID | head -1)
kill -9 "$victim"
ok=0
for k in $(seq 1 40); do
  request get "$k" | grep -q '"n"' && ok=$((ok + 1))
done
[ "$ok" -eq 40 ] || fail "after kill -9 of a child, $ok of 40 requests served"
kill -0 $FPM_PID 2>/dev/null || fail "the FPM master died"
echo "kill -9 of child $victim: the next 40 requests all served"
echo "ok"
