/* steps.c — the demo's scenario: four changes to the cluster under the
 * workers' traffic, and what each one did.
 *
 * The steps are what an operator (or ElastiCache) does to a cluster: add
 * a node, remove one (stopped only once no worker routes to it), and kill
 * the agent with SIGKILL, then start it again. After each change the
 * master waits for the agent's new generation, reads it through its own
 * snapshot reader (a reader that refuses a generation fails the demo),
 * shows each node's share and how many of SAMPLE_KEYS keys moved where,
 * then waits until every worker routes by the new ring and shows when
 * each one switched, in ms after the change (CLOCK_REALTIME stamps the
 * workers took, so they compare across processes).
 */
#include <inttypes.h>
#include <stdio.h>

#include "demo.h"

static const char* node_name_by_port(const demo_t* d, int port) {
  for (int i = 0; i < MAX_NODES; i++)
    if (d->nodes[i].port == port)
      return d->nodes[i].name;
  return "?";
}

void ring_shares(const demo_t* d, char* out, size_t cap) {
  const mcr_ring_t* r = mcr_snapshot_ring(d->snap);
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < mcr_ring_node_count(r) && len < cap; i++) {
    mcr_ring_node_t rn;
    if (mcr_ring_node(r, i, &rn) == 0)
      len +=
          (size_t)snprintf(out + len, cap - len, "%s%s %.1f%%", i ? "  " : "",
                           node_name_by_port(d, rn.port), rn.share * 100);
  }
}

/* The port of the node owning each sample key, to count moved keys. */
static void ring_owners(const demo_t* d, uint16_t* owners) {
  const mcr_ring_t* r = mcr_snapshot_ring(d->snap);
  for (int i = 0; i < SAMPLE_KEYS; i++) {
    char key[32];
    int kl = snprintf(key, sizeof key, "sample:%d", i);
    mcr_ring_node_t rn;
    mcr_ring_node(r, mcr_ring_locate(r, key, (size_t)kl), &rn);
    owners[i] = rn.port;
  }
}

/* "24.9% of keys moved: mc1->mc4 8.2%, mc2->mc4 8.4%, mc3->mc4 8.3%" */
static void keys_moved(const demo_t* d, const uint16_t* before,
                       const uint16_t* after) {
  struct {
    uint16_t from, to;
    int n;
  } pairs[MAX_NODES * MAX_NODES] = {{0}};
  int npairs = 0, moved = 0;
  for (int i = 0; i < SAMPLE_KEYS; i++) {
    if (before[i] == after[i])
      continue;
    moved++;
    int p = 0;
    while (p < npairs &&
           (pairs[p].from != before[i] || pairs[p].to != after[i]))
      p++;
    if (p == npairs && npairs < MAX_NODES * MAX_NODES)
      pairs[npairs++] = (typeof(pairs[0])){before[i], after[i], 0};
    if (p < npairs)
      pairs[p].n++;
  }
  char line[512];
  size_t len = (size_t)snprintf(line, sizeof line, "%.1f%% of the keys moved",
                                pct((uint64_t)moved, SAMPLE_KEYS));
  for (int p = 0; p < npairs && len < sizeof line; p++)
    len += (size_t)snprintf(line + len, sizeof line - len, "%s %s->%s %.1f%%",
                            p ? "," : ":", node_name_by_port(d, pairs[p].from),
                            node_name_by_port(d, pairs[p].to),
                            pct((uint64_t)pairs[p].n, SAMPLE_KEYS));
  say(d, "   %s", line);
}

/* Waits up to 3 s for every worker to route by `gen`; notes and shows
 * when each switched. pub_ms: when the agent published, in ms after the
 * change. */
static bool workers_follow(demo_t* d, uint64_t gen, int64_t change_ns,
                           int64_t pub_ms) {
  double end = mono_s() + 3.0;
  bool all = false;
  while (!all && mono_s() < end && nap(0.001)) {
    all = true;
    for (int i = 0; i < d->cf.workers; i++)
      all = all && LOAD(&d->shm->w[i].gen) >= gen;
  }
  if (demo_interrupted)
    return false;
  char line[512];
  size_t len = 0;
  int64_t slowest = 0;
  for (int i = 0; i < d->cf.workers && len < sizeof line; i++) {
    uint64_t g = LOAD(&d->shm->w[i].gen);
    int64_t sw = (int64_t)LOAD(&d->shm->w[i].switch_ns);
    if (g < gen) {
      d->switch_ms[i] = -1;
      len +=
          (size_t)snprintf(line + len, sizeof line - len, " w%d never", i + 1);
      continue;
    }
    d->switch_ms[i] = (sw - change_ns) / 1000000;
    slowest = d->switch_ms[i] > slowest ? d->switch_ms[i] : slowest;
    len += (size_t)snprintf(line + len, sizeof line - len, " w%d +%" PRId64,
                            i + 1, d->switch_ms[i]);
  }
  say(d, "   workers switched (ms after the change):%s", line);
  if (!all) {
    fail(d, "a worker did not switch to generation %" PRIu64 " within 3 s",
         gen);
    return false;
  }
  d->slowest_ms = slowest > d->slowest_ms ? slowest : d->slowest_ms;
  int64_t after_pub = slowest - pub_ms;
  say(d,
      "   all %d workers on generation %" PRIu64 " within %" PRId64
      " ms of the change (%" PRId64 " ms after the agent published it)",
      d->cf.workers, gen, slowest, after_pub < 0 ? 0 : after_pub);
  return true;
}

/* After a change made at change_ns (CLOCK_REALTIME): waits for the agent's
 * new generation, shows it, and waits for every worker to route by it. */
static bool follow_change(demo_t* d, scenario_t* sc, int64_t change_ns) {
  uint64_t g0 = mcr_snapshot_generation(d->snap);
  if (!agent_wait_gen(d, g0 + 1, 5.0)) {
    if (!demo_interrupted) {
      fail(d, "the agent published no new generation within 5 s");
      log_tail(d, "agent.log");
    }
    return false;
  }
  uint64_t gen = g0;
  if (mcr_snapshot_refresh(d->snap) < 0 ||
      (gen = mcr_snapshot_generation(d->snap)) <= g0) {
    fail(d, "the master's snapshot reader refused generation %" PRIu64 ": %s",
         g0 + 1, mcr_snapshot_last_error(d->snap));
    return false;
  }
  int64_t pub = (int64_t)mcr_ring_publish_time_ns(mcr_snapshot_ring(d->snap));
  if (pub <= 0)
    pub = real_ns();
  char shares[256];
  ring_shares(d, shares, sizeof shares);
  say(d,
      "   agent published ring generation %" PRIu64 " %" PRId64
      " ms after the change: %s",
      gen, (pub - change_ns) / 1000000, shares);
  ring_owners(d, sc->after);
  keys_moved(d, sc->before, sc->after);
  return workers_follow(d, gen, change_ns, (pub - change_ns) / 1000000);
}

/* Notes who owns the sample keys, then rewrites the node file: the
 * change. Its time (CLOCK_REALTIME) in *change_ns. */
static bool relist(demo_t* d, scenario_t* sc, int64_t* change_ns) {
  ring_owners(d, sc->before);
  *change_ns = real_ns();
  if (nodes_write(d) == 0)
    return true;
  fail(d, "cannot write the node file");
  return false;
}

static bool step_add(demo_t* d, scenario_t* sc) {
  say(d, "STEP 1/4: add a fourth node");
  if (node_start(d, 3) != 0) {
    fail(d, "cannot start a fourth memcached");
    return false;
  }
  d->nodes[3].listed = true;
  int64_t change;
  if (!relist(d, sc, &change))
    return false;
  say(d,
      "   memcached mc4 started on 127.0.0.1:%d and added to the node "
      "list the endpoint serves",
      d->nodes[3].port);
  return follow_change(d, sc, change);
}

static bool step_remove(demo_t* d, scenario_t* sc) {
  node_t* n = &d->nodes[1];
  say(d, "STEP 2/4: remove node %s (127.0.0.1:%d) from the cluster", n->name,
      n->port);
  n->listed = false;
  int64_t change;
  if (!relist(d, sc, &change) || !follow_change(d, sc, change))
    return false;
  child_stop(d, n->pid, SIGTERM);
  say(d, "   memcached %s stopped: no worker routes to it any more", n->name);
  return true;
}

static bool step_kill(demo_t* d, scenario_t* sc) {
  say(d, "STEP 3/4: kill the agent with SIGKILL (pid %d)", (int)d->agent);
  sc->kill_gen = mcr_snapshot_generation(d->snap);
  child_stop(d, d->agent, SIGKILL);
  sample_take(d, &sc->kill_sample);
  say(d,
      "   agent gone; generation %" PRIu64
      " stays published and the workers keep routing by it",
      sc->kill_gen);
  return true;
}

static bool step_restart(demo_t* d, scenario_t* sc) {
  sample_t now;
  sample_take(d, &now);
  wsample_t a, b;
  sample_totals(d, &sc->kill_sample, &a);
  sample_totals(d, &now, &b);
  bool stayed = true;
  for (int i = 0; i < d->cf.workers; i++)
    stayed = stayed && now.w[i].gen == sc->kill_gen;
  say(d,
      "   while the agent was dead (%.1f s): %" PRIu64 " calls, %" PRIu64
      " errors, %s",
      now.t - sc->kill_sample.t, b.ops - a.ops, b.errors - a.errors,
      stayed ? "every worker stayed on its ring" : "a generation changed!");
  if (!stayed || b.errors != a.errors)
    fail(d, "the workers did not keep serving on the last ring");
  say(d, "STEP 4/4: start the agent again");
  ring_owners(d, sc->before);
  int64_t change = real_ns();
  if (agent_start(d) != 0) {
    fail(d, "cannot start mcring-agent");
    return false;
  }
  say(d,
      "   mcring-agent started (pid %d); a new agent publishes its first "
      "ring under a new generation",
      (int)d->agent);
  return follow_change(d, sc, change);
}

bool scenario_step(demo_t* d, scenario_t* sc, int i) {
  static bool (*const steps[])(demo_t*, scenario_t*) = {
      step_add, step_remove, step_kill, step_restart};
  return i >= 0 && i < 4 && steps[i](d, sc);
}
