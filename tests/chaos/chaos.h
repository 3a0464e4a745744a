/* chaos.h — helpers shared by the chaos tests (header-only, static).
 *
 * The chaos tests run real processes (memcached, mcring-agent, forked
 * worker processes using libmcring) and break them on purpose. What they
 * share: a private temp directory, spawning the built agent with its
 * stderr in a log file, waiting for a generation, a seeded random source
 * (the seed is printed so a failing run can be replayed with
 * MCR_CHAOS_SEED), and the duration knob MCR_CHAOS_SECONDS (default 3).
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

static inline const char* chaos_agent_bin(void) {
  static char path[512];
  const char* top = getenv("MCR_TOP_BUILDDIR");
  snprintf(path, sizeof(path), "%s/mcring-agent", top ? top : ".");
  if (access(path, X_OK) != 0)
    cr_assert_fail("no agent binary at %s (set MCR_TOP_BUILDDIR)", path);
  return path;
}

/* Spawns the agent on e->ring with the extra args (NULL-terminated);
 * stderr is appended to e->log. envs: "NAME=value" strings to set in the
 * child (NULL-terminated, may be NULL). */
static inline pid_t chaos_agent_spawn(chaos_env_t* e, const char* const* envs,
                                      const char* const* args) {
  const char* argv[40];
  size_t n = 0;
  argv[n++] = chaos_agent_bin();
  argv[n++] = "--ring-dir";
  argv[n++] = e->ring;
  argv[n++] = "--config";
  argv[n++] = "/dev/null";
  for (size_t i = 0; args[i] && n < 39; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return spawn_prog(
      argv, &(spawn_opts_t){.err = e->log, .err_append = true, .env = envs});
}

/* Waits for pid; its exit status, or -1 (signal, or killed at timeout). */
static inline int chaos_wait(pid_t pid, int timeout_ms) {
  return wait_exit(pid, timeout_ms);
}

/* True while pid has not exited (a zombie counts as exited). */
static inline bool chaos_alive(pid_t pid) {
  int st;
  return waitpid(pid, &st, WNOHANG) == 0;
}

/* Current generation in ring_dir (0 when none is readable). */
static inline uint64_t chaos_gen(const char* ring) {
  mcr_snapshot_t* s;
  char err[256];
  if (mcr_snapshot_open(&s, ring, NULL, err, sizeof(err)) != 0)
    return 0;
  uint64_t g = mcr_snapshot_generation(s);
  mcr_snapshot_free(s);
  return g;
}

static inline uint64_t chaos_wait_gen(const char* ring, uint64_t want,
                                      int timeout_ms) {
  int64_t end = now_ms() + timeout_ms;
  uint64_t g;
  while ((g = chaos_gen(ring)) < want) {
    if (now_ms() > end)
      cr_assert_fail("generation %llu never reached (at %llu)",
                     (unsigned long long)want, (unsigned long long)g);
    usleep(5000);
  }
  return g;
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

static inline char* chaos_slurp(const char* path) {
  static char buf[1 << 18];
  buf[0] = '\0';
  FILE* f = fopen(path, "r");
  if (!f)
    return buf;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static inline double chaos_now_s(void) {
  return (double)now_ms() / 1000.0;
}

#endif /* MCR_CHAOS_H */
