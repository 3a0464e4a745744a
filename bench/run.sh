#!/bin/sh
# bench/run.sh — the driver behind `make bench` (see bench/README.md).
#
# Starts four memcached on free loopback ports, runs every bench program
# against them in one go, counts instructions (valgrind --tool=callgrind)
# and system calls (strace -c) of the client process at two loop lengths
# so that start-up cancels out, then prints a table, one `metric` line per
# headline figure, and writes bench/results.json in the build directory.
# A MISS never fails the run: the exit status is non-zero only when a
# measurement itself could not be made.
set -u

builddir=${BENCH_BUILDDIR:-$(pwd)}
memcached=${MEMCACHED:-memcached}
cd "$builddir" || exit 1
out=bench
raw=$out/results.raw
json=$out/results.json
: >"$raw"
mcd_pids=""
status=0

cleanup() {
  for p in $mcd_pids; do kill "$p" 2>/dev/null; done
  for p in $mcd_pids; do wait "$p" 2>/dev/null; done
  mcd_pids=""
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

say() { printf '== %s\n' "$*" >&2; }
collect() { grep '^result ' | sed 's/^result //' >>"$raw"; }

# ---------------------------------------------------------------- memcached
command -v "$memcached" >/dev/null 2>&1 || {
  echo "bench: memcached not found (apt-get install memcached)" >&2
  exit 1
}
user=""
[ "$(id -u)" -eq 0 ] && user="-u root"
ports=$(bench/bench_kv ports 4) || exit 1
for p in $(echo "$ports" | tr , ' '); do
  # shellcheck disable=SC2086
  "$memcached" -l 127.0.0.1 -p "$p" -U 0 -t 1 -m 64 -c 4096 $user &
  mcd_pids="$mcd_pids $!"
done
bench/bench_kv wait "$ports" || exit 1
say "memcached x4 on 127.0.0.1:$ports"

# ---------------------------------------------------------------- wall clock
say "single get/set and multi-get, wall clock (5 interleaved rounds)"
bench/bench_kv time "$ports" | collect || status=1

# ---------------------------------------------------------------- per op
# loop_n OP: the two loop lengths (a multi-get is 100 keys per op).
loop_n() { if [ "$1" = mget ]; then echo "200 400"; else echo "1000 2000"; fi; }

# under KIND FILE CMD...: runs CMD under the counting tool of KIND.
under() {
  kind=$1 file=$2
  shift 2
  case $kind in
    instr) valgrind --tool=callgrind --callgrind-out-file="$file" "$@" ;;
    syscalls) strace -f -c -o "$file" "$@" ;;
  esac
}

# total KIND FILE: the count the tool wrote (all instructions / all calls).
total() {
  case $1 in
    instr) sed -n 's/^summary: *//p' "$2" | head -1 ;;
    syscalls) awk '$NF == "total" { print $4 }' "$2" ;;
  esac
}

# profile OP N1 N2: where mcring's instructions go, per op and function
# (inclusive and exclusive): the difference of the two runs.
profile() {
  command -v callgrind_annotate >/dev/null 2>&1 || return 0
  for mode in inclusive exclusive; do
    flag=""
    [ $mode = inclusive ] && flag="--inclusive=yes"
    for n in "$2" "$3"; do
      # shellcheck disable=SC2086
      callgrind_annotate --auto=no $flag --threshold=100 \
        "$out/instr.mcring.$1.$n" 2>/dev/null |
        awk '/file:function/ { f = 1; next }
             f && /%\)/ { l = $0; sub(/\([^)]*\)/, "", l);
                          split(l, x, " "); gsub(",", "", x[1]);
                          print x[1], x[2] }' >"$out/cg.tmp.$n"
    done
    awk -v n=$(( $3 - $2 )) 'NR == FNR { a[$2] = $1; next }
         { d = ($1 - a[$2]) / n; if (d >= 1) printf "%9.1f  %s\n", d, $2 }' \
      "$out/cg.tmp.$2" "$out/cg.tmp.$3" | sort -rn >"$out/callgrind-$1-$mode.txt"
    rm -f "$out/cg.tmp.$2" "$out/cg.tmp.$3"
  done
}

# count KIND: every client and op at the two loop lengths under the tool;
# records "<op>_<KIND>_<client> <per-op difference>".
count() {
  for op in get10 get4k set10 set4k mget; do
    set -- $(loop_n $op)
    for impl in mcring libmemcached raw; do
      for n in "$1" "$2"; do
        under "$kind" "$out/$kind.$impl.$op.$n" \
          bench/bench_kv loop $impl $op "$n" "$ports" >/dev/null 2>&1 ||
          { echo "bench: $kind $impl $op $n failed" >&2; status=1; }
      done
      a=$(total "$kind" "$out/$kind.$impl.$op.$1")
      b=$(total "$kind" "$out/$kind.$impl.$op.$2")
      [ -n "$a" ] && [ -n "$b" ] &&
        awk -v a="$a" -v b="$b" -v n=$(( $2 - $1 )) -v k="${op}_${kind}_$impl" \
          'BEGIN { printf "%s %.3f\n", k, (b - a) / n }' >>"$raw"
    done
    [ "$kind" = instr ] && profile $op "$1" "$2"
  done
}

if command -v valgrind >/dev/null 2>&1; then
  say "instructions per op (callgrind, client process only)"
  kind=instr count
  # The swap to a new ring where one node changed, inside
  # mcr__router_refresh only (host stats on), at 500 and 5,000 nodes.
  valgrind --tool=callgrind --toggle-collect=mcr__router_refresh \
    --callgrind-out-file="$out/instr.swap" bench/bench_ring --swap-profile 5 \
    >/dev/null 2>&1 || status=1
  s=$(total instr "$out/instr.swap")
  [ -n "$s" ] && echo "swap_instr_500 $(( s / 5 ))" >>"$raw"
  valgrind --tool=callgrind --toggle-collect=mcr__router_refresh \
    --callgrind-out-file="$out/instr.swap.5000" \
    bench/bench_ring --swap-profile 5 5000 >/dev/null 2>&1 || status=1
  s=$(total instr "$out/instr.swap.5000")
  [ -n "$s" ] && echo "swap_instr_5000 $(( s / 5 ))" >>"$raw"
  # The same for a worker that has used one node of the ring: what an
  # idle worker pays, whatever the ring's size.
  for n in 500 5000; do
    valgrind --tool=callgrind --toggle-collect=mcr__router_refresh \
      --callgrind-out-file="$out/instr.swap.idle.$n" \
      bench/bench_ring --swap-profile-idle 5 $n >/dev/null 2>&1 || status=1
    s=$(total instr "$out/instr.swap.idle.$n")
    [ -n "$s" ] && echo "swap_instr_idle_$n $(( s / 5 ))" >>"$raw"
  done
  callgrind_annotate --auto=no "$out/instr.swap" 2>/dev/null |
    sed -n '/file:function/,$p' | head -25 >"$out/callgrind-swap-exclusive.txt"
  # One lookup (ketama mode, the key's MD5 included) against the ring's
  # size, inside mcr_ring_locate only: the curve shows the bucket index
  # keeping up with the points (building the 65,535-node ring under
  # callgrind takes about a minute).
  for n in 100 1000 5000 65535; do
    valgrind --tool=callgrind --toggle-collect=mcr_ring_locate \
      --callgrind-out-file="$out/instr.lookup.$n" \
      bench/bench_lookup loop $n ketama 20000 >/dev/null 2>&1 || status=1
    s=$(total instr "$out/instr.lookup.$n")
    [ -n "$s" ] && echo "lookup_instr_ketama_$n $(( s / 20000 ))" >>"$raw"
  done
else
  echo "bench: valgrind not found: no instruction counts" >&2
fi

if command -v strace >/dev/null 2>&1; then
  say "system calls per op (strace -c -f)"
  kind=syscalls count
else
  echo "bench: strace not found (apt-get install strace): no syscall counts" >&2
fi
cleanup

# ---------------------------------------------------------------- TLS
# Three memcached -Z next to three plain ones, certificates made afresh.
if [ -x bench/bench_tls ] && command -v openssl >/dev/null 2>&1; then
  say "TLS next to plain (memcached -Z, one run)"
  tlsdir=$out/tls
  rm -rf "$tlsdir"
  if sh "${TOP_SRCDIR:-..}/tests/support/tls_certs.sh" "$tlsdir"; then
    ports=$(bench/bench_kv ports 6) || exit 1
    plain=$(echo "$ports" | cut -d, -f1-3)
    tls=$(echo "$ports" | cut -d, -f4-6)
    for p in $(echo "$plain" | tr , ' '); do
      # shellcheck disable=SC2086
      "$memcached" -l 127.0.0.1 -p "$p" -U 0 -t 1 -m 64 $user &
      mcd_pids="$mcd_pids $!"
    done
    for p in $(echo "$tls" | tr , ' '); do
      # shellcheck disable=SC2086
      "$memcached" -l 127.0.0.1 -p "$p" -U 0 -t 1 -m 64 $user -Z \
        -o "ssl_chain_cert=$tlsdir/server.pem,ssl_key=$tlsdir/server.key" \
        2>/dev/null &
      mcd_pids="$mcd_pids $!"
    done
    bench/bench_kv wait "$ports" || exit 1
    bench/bench_tls time "$plain" "$tls" "$tlsdir/ca.pem" | collect || status=1
    first=$(echo "$tls" | cut -d, -f1)
    for kind in instr syscalls; do
      command -v "$([ $kind = instr ] && echo valgrind || echo strace)" \
        >/dev/null 2>&1 || continue
      for n in 1000 2000; do
        under "$kind" "$out/$kind.tls.get10.$n" bench/bench_tls loop get10 \
          "$n" "$first" "$tlsdir/ca.pem" >/dev/null 2>&1 || status=1
      done
      a=$(total "$kind" "$out/$kind.tls.get10.1000")
      b=$(total "$kind" "$out/$kind.tls.get10.2000")
      [ -n "$a" ] && [ -n "$b" ] &&
        awk -v a="$a" -v b="$b" -v k="tls_get10_$kind" \
          'BEGIN { printf "%s %.3f\n", k, (b - a) / 1000 }' >>"$raw"
    done
    cleanup
  else
    echo "bench: cannot make TLS certificates" >&2
    status=1
  fi
fi

# ---------------------------------------------------------------- stampede
# 64 workers on one hot key that expires every second, 50 ms to recompute:
# plain get/set next to leases, one memcached (-t 2: the workers' load).
say "stampede: 64 workers, a hot key expiring every second (plain, then leases)"
port=$(bench/bench_kv ports 1) || exit 1
# shellcheck disable=SC2086
"$memcached" -l 127.0.0.1 -p "$port" -U 0 -t 2 -m 64 $user &
mcd_pids="$mcd_pids $!"
bench/bench_kv wait "$port" || exit 1
bench/bench_lease "$port" 64 5 50 | collect || status=1
cleanup

# ---------------------------------------------------------------- host
# What a many-process host would deploy instead: libmemcached per worker,
# or a local nutcracker (twemproxy) in front of the nodes. bench_host
# starts its own three memcached and nutcracker (it stops one memcached
# for the incident) on ports chosen here.
nutcracker=${NUTCRACKER:-$(command -v nutcracker || echo /usr/sbin/nutcracker)}
if [ -x "$nutcracker" ]; then
  say "host: 8 and 64 workers over 3 nodes; mcring, libmemcached, nutcracker; an incident"
  ports=$(bench/bench_kv ports 4) || exit 1
  bench/bench_host "$(command -v "$memcached")" "$nutcracker" "$ports" 3 |
    collect || status=1
else
  echo "bench: nutcracker not found (apt-get install nutcracker): no host section" >&2
fi

# ---------------------------------------------------------------- lookup
say "key lookup"
bench/bench_lookup | collect || status=1

# ---------------------------------------------------------------- ring
say "ring memory, propagation, discovery load (forked workers)"
bench/bench_ring ./mcring-agent | collect || status=1

# ---------------------------------------------------------------- agent
say "agent: CPU per unchanged poll and per publication, by cluster size"
bench/bench_agent | collect || status=1

# ---------------------------------------------------------------- bindings
# The PHP extension next to php-memcached under PHP-FPM and nginx, and the
# Python binding next to pymemcache and pylibmc: their own scripts, which
# install what they need and print their tables (MCR_BENCH_BINDINGS=0
# leaves them out). The ratios of mcring's figures to the peers' are
# recorded: requests/s over both rounds (PHP), get 10 B ops/s (Python).
if [ "${MCR_BENCH_BINDINGS:-1}" != 0 ]; then
  say "PHP: mcring next to php-memcached under PHP-FPM (bench/php/run.sh)"
  bash "${TOP_SRCDIR:-..}/bench/php/run.sh" "$builddir" 8 >"$out/php.txt" 2>&1 ||
    status=1
  cat "$out/php.txt" >&2
  awk '$1 == "mcring" { m += $3; nm++ } $1 == "memcached" { p += $3; np++ }
       END { if (nm && np && p > 0) printf "php_rps_ratio %.3f\n", (m / nm) / (p / np) }' \
    "$out/php.txt" >>"$raw"
  say "Python: mcring next to pymemcache and pylibmc (bench/python/run.sh)"
  bash "${TOP_SRCDIR:-..}/bench/python/run.sh" "$builddir" >"$out/python.txt" 2>&1 ||
    status=1
  cat "$out/python.txt" >&2
  awk '$1 == "mcring.Client" { m = $2 } $1 == "pymemcache.Client" { p = $2 }
       END { sub("/s", "", m); sub("/s", "", p)
             if (m > 0 && p > 0) printf "python_get_ratio_pymemcache %.3f\n", m / p }' \
    "$out/python.txt" >>"$raw"
fi

# ---------------------------------------------------------------- report
awk -v json="$json" '
function v(k) { return (k in r) ? r[k] : "nan" }
function maxv(a, b) { if (a == "nan" || b == "nan") return "nan"; return a + 0 > b + 0 ? a : b }
function minv(a, b) { if (a == "nan" || b == "nan") return "nan"; return a + 0 < b + 0 ? a : b }
function fmt(x, p) { return x == "nan" ? "n/a" : sprintf("%." p "f", x) }
function metric(name, val, op, target,   ok) {
  ok = 0
  if (val != "nan")
    ok = (op == "<=") ? (val + 0 <= target) : (val + 0 >= target)
  mline[++nm] = sprintf("metric %s %s target%s%s %s", name,
                        val == "nan" ? "nan" : sprintf("%.4g", val), op, target,
                        ok ? "PASS" : "MISS")
  mname[nm] = name; mval[nm] = val; mop[nm] = op; mtgt[nm] = target; mok[nm] = ok
}
{ r[$1] = $2; order[++n] = $1 }
END {
  print ""
  print "Single-key operations, one node, one connection (medians of 5 interleaved rounds)"
  printf "%-7s %11s %11s %11s %8s %8s %9s %9s %9s %8s %8s %8s\n", "op", "raw ops/s",
    "mcring", "libmcd", "vs raw", "vs libm", "instr mcr", "instr lm", "instr raw",
    "sys mcr", "sys lm", "sys raw"
  split("get10 get4k set10 set4k", ops, " ")
  for (i = 1; i <= 4; i++) {
    o = ops[i]
    printf "%-7s %11s %11s %11s %8s %8s %9s %9s %9s %8s %8s %8s\n", o,
      fmt(v(o "_ops_raw"), 0), fmt(v(o "_ops_mcring"), 0), fmt(v(o "_ops_libmemcached"), 0),
      fmt(v(o "_ratio_floor"), 3), fmt(v(o "_ratio_libmemcached"), 3),
      fmt(v(o "_instr_mcring"), 0), fmt(v(o "_instr_libmemcached"), 0), fmt(v(o "_instr_raw"), 0),
      fmt(v(o "_syscalls_mcring"), 2), fmt(v(o "_syscalls_libmemcached"), 2), fmt(v(o "_syscalls_raw"), 2)
  }
  print ""
  print "Multi-get, 100 keys over 4 nodes (100-byte values)"
  printf "  keys/s: raw %s  mcring %s  libmemcached %s   mcring/raw %s  mcring/libmemcached %s\n",
    fmt(v("mget_ops_raw") * 100, 0), fmt(v("mget_ops_mcring") * 100, 0),
    fmt(v("mget_ops_libmemcached") * 100, 0), fmt(v("mget_ratio_floor"), 3),
    fmt(v("mget_ratio_libmemcached"), 3)
  printf "  per multi-get: instructions mcring %s libmemcached %s raw %s; syscalls mcring %s libmemcached %s raw %s\n",
    fmt(v("mget_instr_mcring"), 0), fmt(v("mget_instr_libmemcached"), 0), fmt(v("mget_instr_raw"), 0),
    fmt(v("mget_syscalls_mcring"), 2), fmt(v("mget_syscalls_libmemcached"), 2), fmt(v("mget_syscalls_raw"), 2)
  print ""
  print "TLS (memcached -Z) next to plain, one node for gets, three for the multi-get"
  printf "  get 10 B: plain %s ops/s, TLS %s ops/s (TLS/plain %s); per get over TLS: %s instructions, %s syscalls\n",
    fmt(v("tls_get10_ops_plain"), 0), fmt(v("tls_get10_ops_tls"), 0), fmt(v("tls_get_ratio"), 3),
    fmt(v("tls_get10_instr"), 0), fmt(v("tls_get10_syscalls"), 2)
  printf "  multi-get 100 keys: plain %s keys/s, TLS %s keys/s (TLS/plain %s)\n",
    fmt(v("tls_mget_keys_plain"), 0), fmt(v("tls_mget_keys_tls"), 0), fmt(v("tls_mget_ratio"), 3)
  printf "  a connection plus one get: full handshake %s us, resumed %s us (share resumed %s); TLS context per client %s us\n",
    fmt(v("tls_handshake_full_us"), 0), fmt(v("tls_handshake_resumed_us"), 0), fmt(v("tls_resumed_share"), 3),
    fmt(v("tls_context_us"), 0)
  print ""
  print "Stampede: 64 workers, one hot key expiring every second, 50 ms to recompute"
  printf "  recomputations per expiry: plain get/set %s, leases %s; read p99 / p99.9 ms: plain %s / %s, leases %s / %s; failed reads: plain %s, leases %s\n",
    fmt(v("stampede_recomputes_per_expiry_plain"), 2), fmt(v("stampede_recomputes_per_expiry_lease"), 2),
    fmt(v("stampede_p99_ms_plain"), 2), fmt(v("stampede_p999_ms_plain"), 2),
    fmt(v("stampede_p99_ms_lease"), 2), fmt(v("stampede_p999_ms_lease"), 2),
    fmt(v("stampede_failed_reads_plain"), 0), fmt(v("stampede_failed_reads_lease"), 0)
  print ""
  print "Host: one-key gets over 3 nodes (ops/s, p99 us, CPU us per op of the whole host, server connections)"
  split("ring embedded libmc mcr-nut lm-nut", hc, " ")
  for (a = 8; a <= 64; a *= 8)
    for (i = 1; i <= 5; i++) {
      p = "host_" hc[i] "_" a "_"
      printf "  %-9s %3d workers: %9s ops/s  p50 %6s  p99 %6s  p99.9 %7s us  CPU %6s us/op  %4s conns\n",
        hc[i], a, fmt(v(p "ops"), 0), fmt(v(p "p50_us"), 0), fmt(v(p "p99_us"), 0),
        fmt(v(p "p999_us"), 0), fmt(v(p "cpu_us_per_op"), 1), fmt(v(p "conns"), 0)
    }
  print "  incident, 64 workers, one node SIGSTOPped 5 s: failed calls, total time failed calls waited, last failure after the resume, p99 while stopped"
  for (i = 1; i <= 5; i++) {
    p = "incident_" hc[i] "_"
    printf "  %-9s %8s failed  %8s s waited  %6s ms  p99 %7s ms\n", hc[i],
      fmt(v(p "failed"), 0), fmt(v(p "wait_s"), 2), fmt(v(p "last_fail_ms"), 0), fmt(v(p "p99_ms"), 1)
  }
  print ""
  printf "Bindings: PHP-FPM page requests/s mcring / php-memcached %s; Python get 10 B mcring / pymemcache %s (tables above)\n",
    fmt(v("php_rps_ratio"), 3), fmt(v("python_get_ratio_pymemcache"), 3)
  print ""
  print "Key lookup, ns per key (medians of 5)"
  printf "  %-6s %10s %20s %8s %14s\n", "nodes", "ketama", "ketama-libmemcached", "xxh3", "libmemcached"
  split("10 100 1000", ns, " ")
  for (i = 1; i <= 3; i++)
    printf "  %-6s %10s %20s %8s %14s\n", ns[i], fmt(v("lookup_ns_ketama_" ns[i]), 1),
      fmt(v("lookup_ns_ketama_libmemcached_" ns[i]), 1), fmt(v("lookup_ns_xxh3_" ns[i]), 1),
      fmt(v("lookup_ns_libmemcached_" ns[i]), 1)
  printf "  instructions per ketama lookup (key hash included), by nodes:"
  split("100 1000 5000 65535", ls, " ")
  for (i = 1; i <= 4; i++)
    printf " %s: %s", ls[i], fmt(v("lookup_instr_ketama_" ls[i]), 0)
  print ""
  print ""
  print "Shared ring, 500 nodes"
  printf "  ring file %s bytes; an in-process ring %s bytes of heap\n",
    fmt(v("ring_bytes_500"), 0), fmt(v("ring_private_bytes_500"), 0)
  for (i = 64; i <= 256; i *= 4)
    printf "  %3d workers: ring PSS total %s KiB = %s rings (private copies: %s rings); client heap per worker %s KiB\n",
      i, fmt(v("ring_pss_total_kb_" i), 0), fmt(v("ring_pss_ratio_" i), 3),
      fmt(v("ring_private_ratio_" i), 1), fmt(v("worker_client_heap_bytes_" i) / 1024, 1)
  printf "  swap to a new generation: %s us per worker alone (reader %s us, %s instructions), normal call %s ns\n",
    fmt(v("swap_us_500"), 0), fmt(v("swap_reader_us_500"), 0), fmt(v("swap_instr_500"), 0),
    fmt(v("swap_call_ns_normal"), 0)
  printf "  instructions per switch when one node changed (host stats on), worker using every node: 500 nodes %s, 5,000 nodes %s\n",
    fmt(v("swap_instr_500"), 0), fmt(v("swap_instr_5000"), 0)
  printf "  the same for a worker that used one node: 500 nodes %s, 5,000 nodes %s\n",
    fmt(v("swap_instr_idle_500"), 0), fmt(v("swap_instr_idle_5000"), 0)
  printf "  propagation to 256 workers (1 call/ms each), ms after publish: min %s median %s max %s (worst of 5: %s)\n",
    fmt(v("propagation_ms_min"), 2), fmt(v("propagation_ms_median"), 2),
    fmt(v("propagation_ms_max"), 2), fmt(v("propagation_ms_max_worst"), 2)
  for (i = 512; i <= 1024; i *= 2)
    printf "  propagation to %d workers: min %s median %s max %s (worst of 5: %s)\n", i,
      fmt(v("propagation_ms_min_" i), 2), fmt(v("propagation_ms_median_" i), 2),
      fmt(v("propagation_ms_max_" i), 2), fmt(v("propagation_ms_max_worst_" i), 2)
  printf "  propagation to 256 workers on a 5,000-node ring, host stats served: min %s median %s max %s (worst of 5: %s)\n",
    fmt(v("propagation_ms_min_5000nodes"), 2), fmt(v("propagation_ms_median_5000nodes"), 2),
    fmt(v("propagation_ms_max_5000nodes"), 2), fmt(v("propagation_ms_max_worst_5000nodes"), 2)
  printf "  an idle worker after one call, KiB of heap / RSS growth (shared ring pages included), by ring nodes:"
  split("500 5000 20000 65535", ws, " ")
  for (i = 1; i <= 4; i++)
    printf " %s: %s / %s", ws[i], fmt(v("worker_heap_kb_" ws[i]), 0), fmt(v("worker_rss_kb_" ws[i]), 0)
  print ""
  printf "  via the agent (from its publish stamp, file writing included): median %s max %s ms\n",
    fmt(v("agent_propagation_ms_median"), 1), fmt(v("agent_propagation_ms_max"), 1)
  printf "  discovery with 256 workers: %s polls per 0.2 s interval (%s requests), %s polls in %s s\n",
    fmt(v("endpoint_polls_per_interval_256"), 3), fmt(v("endpoint_requests_per_interval_256"), 3),
    fmt(v("endpoint_polls_in_window"), 0), fmt(v("endpoint_window_s"), 2)
  print ""
  print "Agent, CPU time of its thread (medians)"
  printf "  unchanged poll, us: %s at 1,000 nodes, %s at 5,000, %s at 65,535\n",
    fmt(v("poll_unchanged_us_1000"), 0), fmt(v("poll_unchanged_us_5000"), 0),
    fmt(v("poll_unchanged_us_65535"), 0)
  printf "  publication, ms: ketama %s at 5,000 nodes, %s at 65,535; ketama-libmemcached %s, %s\n",
    fmt(v("publish_ms_5000"), 1), fmt(v("publish_ms_65535"), 1),
    fmt(v("publish_ms_libmemcached_5000"), 1), fmt(v("publish_ms_libmemcached_65535"), 1)
  printf "  the points of a 65,535-node ketama ring, ms: ring builder %s, lib/ring_points.c %s\n",
    fmt(v("ring_build_ms_65535"), 0), fmt(v("ring_points_ms_65535"), 0)
  print ""

  metric("get_instructions_per_op", maxv(v("get10_instr_mcring"), v("get4k_instr_mcring")), "<=", 600)
  metric("get_syscalls_per_op", maxv(v("get10_syscalls_mcring"), v("get4k_syscalls_mcring")), "<=", 2.2)
  metric("get_ops_ratio_floor", minv(v("get10_ratio_floor"), v("get4k_ratio_floor")), ">=", 0.98)
  metric("mget_ratio_floor", v("mget_ratio_floor"), ">=", 0.95)
  metric("mget_ratio_libmemcached", v("mget_ratio_libmemcached"), ">=", 1.3)
  metric("lookup_ratio_libmemcached_100",
         maxv(v("lookup_ratio_ketama_100"), v("lookup_ratio_ketama_libmemcached_100")), "<=", 0.6)
  metric("lookup_ns_xxh3_100", v("lookup_ns_xxh3_100"), "<=", 25)
  metric("lookup_instr_ketama_65535", v("lookup_instr_ketama_65535"), "<=", 800)
  metric("ring_pss_ratio_256", v("ring_pss_ratio_256"), "<=", 1.1)
  metric("propagation_ms_max", v("propagation_ms_max"), "<=", 10)
  metric("propagation_ms_max_512", v("propagation_ms_max_512"), "<=", 10)
  metric("propagation_ms_max_5000nodes", v("propagation_ms_max_5000nodes"), "<=", 50)
  metric("swap_us_500", v("swap_us_500"), "<=", 10)
  metric("swap_instr_idle_5000", v("swap_instr_idle_5000"), "<=", 30000)
  metric("worker_heap_kb_65535", v("worker_heap_kb_65535"), "<=", 1024)
  metric("endpoint_polls_per_interval_256", v("endpoint_polls_per_interval_256"), "<=", 1)
  metric("tls_get_ratio", v("tls_get_ratio"), ">=", 0.85)
  metric("stampede_recomputes_per_expiry_lease", v("stampede_recomputes_per_expiry_lease"), "<=", 1)
  metric("poll_unchanged_us_5000", v("poll_unchanged_us_5000"), "<=", 500)

  metric("php_rps_ratio", v("php_rps_ratio"), ">=", 1.2)
  metric("host_ratio_ring_nutcracker_64", v("host_ratio_ring_nutcracker_64"), ">=", 1.5)
  metric("host_ratio_ring_nutcracker_8", v("host_ratio_ring_nutcracker_8"), ">=", 1.5)
  metric("incident_wait_ratio_ring_libmc", v("incident_wait_ratio_ring_libmc"), "<=", 0.1)
  for (i = 1; i <= nm; i++)
    print mline[i]

  printf "{\n  \"metrics\": {\n" >json
  for (i = 1; i <= nm; i++)
    printf "    \"%s\": {\"value\": %s, \"target\": \"%s%s\", \"pass\": %s}%s\n", mname[i],
      mval[i] == "nan" ? "null" : mval[i] + 0, mop[i], mtgt[i], mok[i] ? "true" : "false",
      i < nm ? "," : "" >json
  printf "  },\n  \"results\": {\n" >json
  for (i = 1; i <= n; i++)
    printf "    \"%s\": %s%s\n", order[i], r[order[i]] + 0, i < n ? "," : "" >json
  printf "  }\n}\n" >json
}' "$raw"
say "results: $builddir/$json (raw figures: $builddir/$raw; per-function instruction profiles: $builddir/$out/callgrind-*.txt)"
exit $status
