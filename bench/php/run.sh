#!/bin/bash
# bench/php/run.sh BUILD_DIR [SECONDS] — mcring against php-memcached
# under the same PHP-FPM setup, side by side (a benchmark, not a test).
#
# One php-fpm8.2 master with two pools of 8 children (pm = static), one per
# client, both extensions loaded in both; nginx in front, one port per
# pool; three memcached. The page does what a typical page does: 20 get,
# one getMulti of 50 keys and 2 set, with a persistent client. wrk drives
# each side in turn (mcring, php-memcached, mcring, php-memcached: rounds
# interleaved so that machine noise falls on both), and the script prints
# requests/s, p50 / p99 latency and the children's RSS per round, then
# (when perf works) a profile of each pool's children.
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR [SECONDS]}" && pwd)
SECS=${2:-10}
HERE=$(cd "$(dirname "$0")" && pwd)
EXT=$HERE/../../bindings/php
PHP=php8.2
for p in php8.2-dev php8.2-fpm php8.2-memcached memcached nginx-light wrk; do
  dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q "$p"; } >/dev/null
done
WORK=$(mktemp -d /tmp/mcring-bench-php.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir "$WORK/ext" && cp "$EXT"/config.m4 "$EXT"/*.c "$EXT"/*.h "$WORK/ext/"
(cd "$WORK/ext" && phpize8.2 && ./configure --with-php-config=php-config8.2 \
  --with-mcring="$BUILD" && make -j2) >"$WORK/build.log" 2>&1 ||
  { tail -20 "$WORK/build.log"; exit 1; }

free_port() {
  $PHP -n -r '$s = stream_socket_server("tcp://127.0.0.1:0");
    echo explode(":", stream_socket_get_name($s, false))[1];'
}
USER_ARGS=()
[ "$(id -u)" -eq 0 ] && USER_ARGS=(-u nobody)
SERVERS=""
for i in 1 2 3; do
  port=$(free_port)
  memcached "${USER_ARGS[@]}" -l 127.0.0.1 -p "$port" -U 0 -m 256 -t 2 &
  PIDS+=("$!")
  SERVERS="$SERVERS${SERVERS:+,}127.0.0.1:$port"
done
sleep 0.5

cat >"$WORK/page.php" <<'EOF'
<?php
$class = getenv('BENCH_CLASS');
$m = new $class('bench');
if ($m->isPristine()) {
    $m->setOption($class::OPT_LIBKETAMA_COMPATIBLE, true);
    foreach (explode(',', getenv('BENCH_SERVERS')) as $s) {
        [$h, $p] = explode(':', $s);
        $m->addServer($h, (int)$p);
    }
}
$r = mt_rand(0, 999);
for ($i = 0; $i < 20; $i++) $m->get("bench:" . (($r + $i) % 1000));
$keys = [];
for ($i = 0; $i < 50; $i++) $keys[] = "bench:" . (($r + 7 * $i) % 1000);
$got = $m->getMulti($keys);
$m->set("bench:" . $r, ['n' => $r, 'text' => str_repeat('x', 200)]);
$m->set("bench:w" . $r, "value $r");
echo count($got), "\n";
EOF

FPM_MC=$(free_port) FPM_PM=$(free_port) WEB_MC=$(free_port) WEB_PM=$(free_port)
cat >"$WORK/fpm.conf" <<EOF
[global]
error_log = $WORK/fpm.log
daemonize = no
[mcring]
listen = 127.0.0.1:$FPM_MC
pm = static
pm.max_children = 8
env[BENCH_CLASS] = Mcring\\Memcached
env[BENCH_SERVERS] = $SERVERS
[memcached]
listen = 127.0.0.1:$FPM_PM
pm = static
pm.max_children = 8
env[BENCH_CLASS] = Memcached
env[BENCH_SERVERS] = $SERVERS
EOF
if [ "$(id -u)" -eq 0 ]; then
  sed -i 's/^pm = static$/pm = static\nuser = nobody\ngroup = nogroup/' "$WORK/fpm.conf"
fi
FPM_ROOT=()
[ "$(id -u)" -eq 0 ] && FPM_ROOT=(-R)
/usr/sbin/php-fpm8.2 "${FPM_ROOT[@]}" -y "$WORK/fpm.conf" -F \
  -d "extension=$WORK/ext/modules/mcring.so" -d opcache.enable=1 &
FPM=$!
PIDS+=("$FPM")

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:$WEB_MC;
    location / { include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $WORK/page.php; fastcgi_pass 127.0.0.1:$FPM_MC; }
  }
  server {
    listen 127.0.0.1:$WEB_PM;
    location / { include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $WORK/page.php; fastcgi_pass 127.0.0.1:$FPM_PM; }
  }
}
EOF
nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" &
PIDS+=("$!")
sleep 1

# warm both sides (and fill the keys)
for port in $WEB_MC $WEB_PM; do
  wrk -t 2 -c 8 -d 2 "http://127.0.0.1:$port/" >/dev/null
done

rss() { # pool name: mean RSS of its children, kB
  local total=0 n=0
  for pid in $(pgrep -P "$FPM"); do
    grep -q "pool $1" "/proc/$pid/cmdline" 2>/dev/null || continue
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")))
    n=$((n + 1))
  done
  echo $((n ? total / n : 0))
}

printf '%-10s %-6s %10s %9s %9s %10s\n' client round "req/s" p50 p99 "RSS kB"
for round in 1 2; do
  for side in mcring memcached; do
    port=$WEB_MC
    [ "$side" = memcached ] && port=$WEB_PM
    out=$(wrk -t 2 -c 16 -d "$SECS" --latency "http://127.0.0.1:$port/")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    printf '%-10s %-6s %10s %9s %9s %10s %s\n' "$side" "$round" "$rps" "$p50" "$p99" \
      "$(rss "$side")" "${non2xx:+non-2xx: $non2xx}"
  done
done

# Where the time goes (when perf works here): one more round per side with
# `perf record` on that pool's children, then their CPU by shared object
# (the PHP interpreter, the client extension and its library, libc, the
# kernel) and the hottest functions. The same page, so the split between
# the interpreter and the client is what a site would see.
if command -v perf >/dev/null 2>&1 && perf record -o /dev/null -- true >/dev/null 2>&1; then
  for side in mcring memcached; do
    port=$WEB_MC
    [ "$side" = memcached ] && port=$WEB_PM
    pids=$(for pid in $(pgrep -P "$FPM"); do
      grep -q "pool $side" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
    done | paste -sd,)
    [ -n "$pids" ] || continue
    perf record -q -F 999 -p "$pids" -o "$WORK/perf.$side" -- sleep 5 >/dev/null 2>&1 &
    rec=$!
    wrk -t 2 -c 16 -d 5 "http://127.0.0.1:$port/" >/dev/null
    wait "$rec"
    echo
    echo "profile, $side pool (perf, % of the children's CPU by shared object):"
    perf report -i "$WORK/perf.$side" --sort dso --stdio 2>/dev/null |
      awk '/^ +[0-9.]+%/ && n < 8 { printf "  %s\n", $0; n++ }'
    echo "  hottest functions:"
    perf report -i "$WORK/perf.$side" --sort dso,symbol --stdio 2>/dev/null |
      awk '/^ +[0-9.]+%/ && n < 10 { printf "  %s\n", $0; n++ }'
  done
fi
