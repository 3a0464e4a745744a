#!/usr/bin/env bash
# tools/demo_php.sh BUILD_DIR [--duration SECONDS] — the demo of mcring's
# main job with PHP, run by `bash tools/run demo php`: PHP-FPM children
# serving a cache page through the ring mcring-agent publishes, while the
# cluster changes under them.
#
# It installs PHP and PHP-FPM when missing (Debian packages, as root),
# builds the extension against BUILD_DIR in a scratch directory, and starts
# the cluster of bindings/php/fpm_cluster.sh: three memcached, the fake
# ElastiCache endpoint listing two, mcring-agent, and 8 FPM children. Eight
# request streams (bindings/php/fcgi_load.php) then read 500 keys through
# the page (a miss fills the key),
# while at a quarter of the run a node is added and at half of it one is
# removed. It prints, for each ring the agent published, when each child
# first served a request routed by it (ms after the publication; a child
# switches at its next request), then requests/s, the hit rate, and
# errors. Exit status 0 when every request was answered and no read gave
# a wrong value.
set -u
build=${1:?usage: demo_php.sh BUILD_DIR [--duration SECONDS]}
shift
DURATION=20
if [ "${1:-}" = "--duration" ] && [ -n "${2:-}" ]; then
  DURATION=$2
fi
[ "$DURATION" -ge 8 ] 2>/dev/null || { echo "--duration: at least 8 seconds" >&2; exit 2; }
BUILD=$(cd "$build" && pwd)
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DEPS="php8.2-dev php8.2-cli php8.2-fpm libfcgi-bin memcached"
missing=""
for p in $DEPS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q $missing >/dev/null ||
    { echo "apt-get install failed" >&2; exit 2; }
fi
make -C "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" mcring-agent mcring tests/fakecfg >/dev/null ||
  exit 2

DIR=$(mktemp -d /tmp/mcring-demo-php.XXXXXX)
chmod 755 "$DIR"
mkdir "$DIR/ext"
cp "$top"/bindings/php/config.m4 "$top"/bindings/php/*.c "$top"/bindings/php/*.h "$DIR/ext/"
echo "== building the PHP extension against $BUILD"
(cd "$DIR/ext" && phpize8.2 && ./configure --with-php-config=php-config8.2 \
  --with-mcring="$BUILD" && make -j2) >"$DIR/build.log" 2>&1 ||
  { tail -20 "$DIR/build.log"; echo "building the extension failed" >&2; exit 2; }
SO=$DIR/ext/modules/mcring.so
CHILDREN=8
MAX_REQUESTS=0
PAR=8
. "$top/bindings/php/fpm_cluster.sh"
cluster_start
echo "== 3 memcached (${PORT[*]}), endpoint $CFG listing 2, agent on $RING, $CHILDREN FPM children"

# The request streams (bindings/php/fcgi_load.php, a FastCGI client that
# needs no process per request): keys 1..500, each request one read (and
# a fill on a miss), until the run's end.
LOADS=()
for i in $(seq $PAR); do
  $PHP -n "$top/bindings/php/fcgi_load.php" "$PORT_FPM" "$DIR/page.php" \
    "$DURATION" 500 >"$DIR/load.$i" &
  LOADS+=($!)
done
START=$(date +%s.%N)
sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 4 }')"
echo "== $(date +%T) adding node 2"
nodes 0 1 2
sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 4 }')"
echo "== $(date +%T) removing node 0"
nodes 1 2
wait "${LOADS[@]}"
END=$(date +%s.%N)
cat "$DIR"/load.* >"$DIR/load"

$PHP -n -r '
[$load, $agentlog, $start, $end] = array_slice($argv, 1);
$pubs = [];
foreach (file($agentlog) as $l)
    if (preg_match("/^(\S+)T(\S+)Z .*published generation (\d+): (\d+) nodes/", $l, $m))
        $pubs[] = [(float)date_create_immutable($m[1] . "T" . $m[2] . "Z")->format("U.u"), (int)$m[3], (int)$m[4]];
$rows = []; $none = 0;
foreach (file($load) as $l) {
    $f = explode(" ", trim($l));
    if ($f[0] === "NONE") { $none++; continue; }
    $rows[] = $f; // pid nodes result code ms start
}
usort($rows, fn($a, $b) => $a[5] <=> $b[5]);
$pids = array_unique(array_column($rows, 0));
echo "\nring switches (ms from the agent publishing a ring to a child serving its first request by it):\n";
foreach ($pubs as [$t, $gen, $n]) {
    if ($t < (float)$start) continue;
    $lat = [];
    foreach ($rows as $r)
        if ((float)$r[5] >= $t - 0.002 && (int)$r[1] == $n && !isset($lat[$r[0]]))
            $lat[$r[0]] = max(0, ((float)$r[5] - $t) * 1000);
    ksort($lat);
    printf("  generation %d (%d nodes): %d of %d children switched;", $gen, $n, count($lat), count($pids));
    foreach ($lat as $pid => $ms) printf(" %d:%.1f", $pid, $ms);
    if ($lat) printf("  (max %.1f ms)", max($lat));
    echo "\n";
}
$c = array_count_values(array_column($rows, 2));
$secs = (float)$end - (float)$start;
$errors = count($rows) - ($c["hit"] ?? 0) - ($c["miss"] ?? 0);
printf("\nrequests: %d in %.1f s (%.0f/s through %d children), unanswered %d\n",
       count($rows) + $none, $secs, (count($rows) + $none) / $secs, count($pids), $none);
printf("hit rate: %.1f%% (%d hits, %d misses: the first reads, and keys whose node changed); errors %d, wrong values %d\n",
       100 * ($c["hit"] ?? 0) / max(1, count($rows)), $c["hit"] ?? 0, $c["miss"] ?? 0, $errors, $c["WRONG"] ?? 0);
exit($none || ($c["WRONG"] ?? 0) ? 1 : 0);
' "$DIR/load" "$DIR/agent.log" "$START" "$END"
rc=$?
[ $rc -eq 0 ] && echo "demo: ok" || echo "demo: FAILED"
exit $rc
