#!/bin/bash
# fpm_ring.sh — PHP-FPM children following mcring-agent's ring while the
# cluster changes under them.
#
# The cluster of ../fpm_cluster.sh: three memcached, the fake ElastiCache
# endpoint listing two of them, mcring-agent following it, and a
# `pm = static` pool of 8 children recycled every 40 requests
# (pm.max_requests) whose page keeps a persistent client on the ring
# directory and sets or gets one key. Checked, in order:
#   - values read equal values written;
#   - a node added to the endpoint's list reaches every child: once the
#     agent has published the ring with it, every request routes by it;
#   - a node removed: the same, and no request fails;
#   - a node that hangs (SIGSTOP) or dies (SIGKILL) costs the requests on
#     it a result code within the timeout: every request is answered;
#   - pm.max_requests recycling leaves no host stats slot behind: the
#     agent lists only handles of live children, at most one per child;
#   - the endpoint was polled by the agent alone (one poll per interval,
#     not one per child).
#
# Needs MCRING_TEST_SO and MCRING_TEST_BUILD (run-tests.sh sets both).
# Prints what it checked; exit 0 when everything held.
set -u
CHILDREN=8
MAX_REQUESTS=40
PAR=8
SO=${MCRING_TEST_SO:?}
BUILD=${MCRING_TEST_BUILD:?}
DIR=$(mktemp -d /tmp/mcring-fpmring.XXXXXX)
chmod 755 "$DIR"
. "$(dirname "$0")/../fpm_cluster.sh"
cluster_start

REQUESTS=0
count() { REQUESTS=$((REQUESTS + $(wc -l <"$1"))); }

# 1. values through two nodes
batch set 1 100 >"$DIR/a.sets"; count "$DIR/a.sets"
batch get 1 100 >"$DIR/a.gets"; count "$DIR/a.gets"
[ "$(grep -c ' stored 0 ' "$DIR/a.sets")" -eq 100 ] || fail "sets on 2 nodes: $(grep -vc ' stored 0 ' "$DIR/a.sets") failed"
bad=$(awk '{ if ($3 !~ /^v[0-9]+$/) n++ } END { print n + 0 }' "$DIR/a.gets")
[ "$bad" -eq 0 ] || fail "$bad of 100 gets on 2 nodes did not return a value"
[ "$(awk '$2 != 2' "$DIR/a.sets" "$DIR/a.gets" | wc -l)" -eq 0 ] || fail "a child did not route by 2 nodes"
echo "2 nodes: 100 values written and read back through $CHILDREN children"

# 2. a node added: every request after the publication routes by it
nodes 0 1 2
wait_ring 3
batch get 1 100 >"$DIR/b.gets"; count "$DIR/b.gets"
stale=$(awk '$2 != 3' "$DIR/b.gets" | wc -l)
[ "$stale" -eq 0 ] || fail "$stale of 100 requests after the node was added still routed by the old ring"
hits=$(awk '$3 ~ /^v[0-9]+$/' "$DIR/b.gets" | wc -l)
echo "node added: all 100 requests after its publication routed by 3 nodes ($hits still hit; the rest moved)"

# 3. a node removed: the same; what the other two hold stays readable
batch set 101 200 >"$DIR/c.sets"; count "$DIR/c.sets"
[ "$(grep -c ' stored 0 ' "$DIR/c.sets")" -eq 100 ] || fail "sets on 3 nodes failed"
nodes 1 2
wait_ring 2
batch get 101 200 >"$DIR/c.gets"; count "$DIR/c.gets"
stale=$(awk '$2 != 2' "$DIR/c.gets" | wc -l)
[ "$stale" -eq 0 ] || fail "$stale of 100 requests after the node was removed still routed by the old ring"
errors=$(awk '$3 !~ /^v[0-9]+$/ && $3 != "miss"' "$DIR/c.gets" | wc -l)
[ "$errors" -eq 0 ] || fail "$errors gets failed after the node was removed"
echo "node removed: all 100 requests after its publication routed by 2 nodes, none failed"

# 4. a node that hangs, then one that dies: answers within the timeout
batch set 201 260 >"$DIR/d.sets"; count "$DIR/d.sets"
kill -STOP "${MCD[1]}"
batch get 201 260 >"$DIR/d.gets"; count "$DIR/d.gets"
kill -CONT "${MCD[1]}"
none=$(grep -c '^NONE' "$DIR/d.gets")
[ "$none" -eq 0 ] || fail "$none requests got no answer while a node hung"
timeouts=$(awk '$4 == 31 || $4 == 47' "$DIR/d.gets" | wc -l)
slow=$(awk '$5 > 3000' "$DIR/d.gets" | wc -l)
[ "$timeouts" -gt 0 ] || fail "no request reported the hung node (RES_TIMEOUT or RES_SERVER_MARKED_DEAD)"
[ "$slow" -eq 0 ] || fail "$slow requests took over 3 s with a 500 ms timeout"
echo "node hung: all 60 requests answered, $timeouts with RES_TIMEOUT / RES_SERVER_MARKED_DEAD, none over 3 s"
kill -9 "${MCD[1]}"
{ wait "${MCD[1]}"; } 2>/dev/null # reaped here, without the shell's notice
batch get 201 260 >"$DIR/e.gets"; count "$DIR/e.gets"
none=$(grep -c '^NONE' "$DIR/e.gets")
[ "$none" -eq 0 ] || fail "$none requests got no answer after a node died"
codes=$(awk '$4 != 0 && $4 != 16' "$DIR/e.gets" | wc -l)
[ "$codes" -gt 0 ] || fail "no request reported the dead node"
slow=$(awk '$5 > 3000' "$DIR/e.gets" | wc -l)
[ "$slow" -eq 0 ] || fail "$slow requests took over 3 s after a node died"
echo "node killed: all 60 requests answered, $codes with an error code, none over 3 s"

# 5. pm.max_requests recycled every child: no host stats slot is left
#    behind. Each child registers once; the agent drops a registration
#    when its process is gone.
[ "$REQUESTS" -ge $((2 * CHILDREN * MAX_REQUESTS)) ] ||
  { batch get 1 $((2 * CHILDREN * MAX_REQUESTS - REQUESTS)) >/dev/null; }
live=$(pgrep -P $FPM_PID | sort)
stat_ok=0
for _ in $(seq 50); do
  slots=$("$BUILD/mcring" stat --ring-dir "$RING" --json 2>/dev/null |
    $PHP -n -r '$j = json_decode(stream_get_contents(STDIN), true);
      foreach ($j["slots"] ?? [] as $s) echo $s["pid"], "\n";' | sort)
  stale=$(comm -23 <(echo "$slots" | sort -u) <(echo "$live"))
  dup=$(echo "$slots" | uniq -d)
  if [ -z "$stale" ] && [ -z "$dup" ]; then
    stat_ok=1
    break
  fi
  sleep 0.1
done
[ $stat_ok -eq 1 ] || fail "host stats lists slots of gone children: $stale"
served=$(cat "$DIR"/*.sets "$DIR"/*.gets | awk '{print $1}' | sort -u | wc -l)
echo "recycling: $served child processes served $REQUESTS+ requests (max_requests $MAX_REQUESTS); host stats lists $(echo "$slots" | grep -c .) handles, all of live children"

# 6. the endpoint saw the agent's polls only: about one per 0.2 s
kill -USR1 "$CFG_PID"
sleep 0.2
polls=$(sed -n 's/.*(\([0-9]*\) config.*/\1/p' "$DIR/cfg.log" | tail -1)
secs=$((SECONDS - AGENT_START + 1))
[ -n "$polls" ] || fail "the endpoint printed no counts"
[ "$polls" -le $((secs * 5 + 5)) ] ||
  fail "$polls config requests in $secs s: more than the agent's one per 0.2 s"
echo "endpoint: $polls config requests in about $secs s (the agent's polls; $CHILDREN children, none of their own)"
kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent died"
echo "ok"
