/* chaos.h — helpers shared by the chaos tests (header-only, static).
 *
 * The chaos tests run real processes (memcached, mcring-agent, forked
 * worker processes using libmcring) and break them on purpose. What they
 * share: a private temp directory, spawning the built agent with its
 * stderr in a log file (over support.h's agent_spawn; the tests wait for a
 * generation with ring_wait_gen and read the log with deploy_slurp), a
 * seeded random source (the seed is printed so a failing run can be
 * replayed with MCR_CHAOS_SEED), and the duration knob MCR_CHAOS_SECONDS
 * (default 3).
 */
#ifndef MCR_CHAOS_H
#define MCR_CHAOS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mcring.h"
#include "support.h"

typedef struct {
  char dir[64];
  char ring[128];
  char log[96];
  char nodes[96];
} chaos_env_t;

static inline void chaos_env_init(chaos_env_t* e) {
  snprintf(e->dir, sizeof(e->dir), "/tmp/mcr-chaos-XXXXXX");
  cr_assert(mkdtemp(e->dir), "mkdtemp: %s", strerror(errno));
  snprintf(e->ring, sizeof(e->ring), "%s/ring", e->dir);
  snprintf(e->log, sizeof(e->log), "%s/agent.log", e->dir);
  snprintf(e->nodes, sizeof(e->nodes), "%s/nodes", e->dir);
}

static inline void chaos_env_fini(chaos_env_t* e) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
  if (system(cmd) != 0) { /* leftovers in /tmp are harmless */
  }
}

/* Seconds each chaos phase lasts. */
static inline double chaos_seconds(void) {
  const char* s = getenv("MCR_CHAOS_SECONDS");
  double v = s ? atof(s) : 3.0;
  return v > 0 ? v : 3.0;
}

/* Seeds rand(); prints the seed. */
static inline unsigned chaos_seed(const char* what) {
  const char* s = getenv("MCR_CHAOS_SEED");
  unsigned seed = s ? (unsigned)strtoul(s, NULL, 10)
                    : (unsigned)(time(NULL) ^ (getpid() << 8));
  fprintf(stderr, "%s: MCR_CHAOS_SEED=%u\n", what, seed);
  srand(seed);
  return seed;
}

/* Spawns the agent on e->ring with the extra args (NULL-terminated);
 * stderr is appended to e->log. envs: "NAME=value" strings to set in the
 * child (NULL-terminated, may be NULL). */
static inline pid_t chaos_agent_spawn(chaos_env_t* e, const char* const* envs,
                                      const char* const* args) {
  spawn_opts_t o = {.err = e->log, .err_append = true, .env = envs};
  return agent_spawn(&o,
                     (const char* const[]){"--ring-dir", e->ring, "--config",
                                           "/dev/null", NULL},
                     args);
}

/* Node count of the current ring and whether `port` is one of its nodes. */
static inline size_t chaos_ring_ports(const char* ring, int* ports,
                                      size_t cap) {
  mcr_snapshot_t* s;
  char err[256];
  if (mcr_snapshot_open(&s, ring, NULL, err, sizeof(err)) != 0)
    return 0;
  const mcr_ring_t* r = mcr_snapshot_ring(s);
  size_t n = mcr_ring_node_count(r);
  for (size_t i = 0; i < n && i < cap; i++) {
    mcr_ring_node_t nd;
    mcr_ring_node(r, i, &nd);
    ports[i] = nd.port;
  }
  mcr_snapshot_free(s);
  return n;
}

static inline double chaos_now_s(void) {
  return (double)now_ms() / 1000.0;
}

#endif /* MCR_CHAOS_H */
