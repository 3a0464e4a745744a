/* cluster.c — memcached nodes, the fake endpoint and the real agent, as one
 * fixture (see cluster.h).
 *
 * End-to-end tests need the three moving parts of a deployment at once,
 * and each test its own: its own memcached ports (memcached picks them),
 * its own endpoint port, its own ring directory, so Criterion can run
 * tests in parallel. The agent runs with a short poll interval and short
 * timeouts so that a test sees a change within a fraction of a second; it
 * is started with tools/deploy.c and dies with the test process
 * (PR_SET_PDEATHSIG) even when that one crashes. The node file names every
 * memcached "node<i>.test" with its numeric address, as ElastiCache does, so
 * the agent needs no DNS.
 */
#include "cluster.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sleep_msec(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void cluster_list(cluster_t* cl, unsigned listed) {
  char text[CLUSTER_MAX_NODES * 64] = "";
  size_t len = 0;
  for (int i = 0; i < cl->nmcd; i++)
    if (listed & (1u << i))
      len += (size_t)snprintf(text + len, sizeof text - len,
                              "node%d.test|127.0.0.1|%d\n", i, cl->mcd[i].port);
  cr_assert_eq(fakecfg_write_file(cl->nodes, text), 0, "node file %s",
               cl->nodes);
  cl->listed = listed;
}

void cluster_agent_start(cluster_t* cl) {
  cr_assert_eq(cl->agent, 0, "the agent is already running");
  const char* args[] = {"--config",
                        cl->conf,
                        "--ring-dir",
                        cl->ring,
                        "--elasticache",
                        fakecfg_endpoint(cl->fake),
                        "--interval",
                        cl->interval,
                        "--max-backoff",
                        "0.2",
                        "--connect-timeout",
                        "0.5",
                        "--io-timeout",
                        "0.5",
                        NULL};
  spawn_opts_t o = {.err = cl->log, .err_append = true};
  cl->agent = agent_spawn(&o, args, NULL);
}

void cluster_agent_kill(cluster_t* cl, int sig) {
  if (cl->agent <= 0)
    return;
  deploy_stop(cl->agent, sig, 5000);
  cl->agent = 0;
}

void cluster_start(cluster_t* cl, int nmcd, unsigned listed,
                   const char* interval) {
  memset(cl, 0, sizeof *cl);
  cr_assert(nmcd > 0 && nmcd <= CLUSTER_MAX_NODES);
  snprintf(cl->dir, sizeof cl->dir, "/tmp/mcr-e2e-XXXXXX");
  cr_assert(mkdtemp(cl->dir), "mkdtemp: %s", strerror(errno));
  snprintf(cl->ring, sizeof cl->ring, "%s/ring", cl->dir);
  snprintf(cl->nodes, sizeof cl->nodes, "%s/nodes", cl->dir);
  snprintf(cl->conf, sizeof cl->conf, "%s/agent.conf", cl->dir);
  snprintf(cl->log, sizeof cl->log, "%s/agent.log", cl->dir);
  snprintf(cl->interval, sizeof cl->interval, "%s", interval);
  cr_assert_eq(fakecfg_write_file(cl->conf, ""), 0);
  for (int i = 0; i < nmcd; i++) {
    mcd_start(&cl->mcd[i], NULL);
    cl->nmcd = i + 1;
  }
  cluster_list(cl, listed);
  fakecfg_opts_t o = {.nodes_file = cl->nodes};
  cl->fake = fakecfg_start(&o);
  cr_assert(cl->fake, "fakecfg_start failed");
  cluster_agent_start(cl);
  ring_wait_gen(cl->ring, 1, 5000);
}

void cluster_stop(cluster_t* cl) {
  cluster_agent_kill(cl, SIGTERM);
  fakecfg_stop(cl->fake);
  cl->fake = NULL;
  for (int i = 0; i < cl->nmcd; i++)
    mcd_stop(&cl->mcd[i]);
  if (cl->dir[0] != '\0') {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cl->dir);
    if (system(cmd) != 0) { /* leftovers in /tmp are harmless */
    }
  }
}

int cluster_node_of_port(const cluster_t* cl, int port) {
  for (int i = 0; i < cl->nmcd; i++)
    if (cl->mcd[i].port == port)
      return i;
  return -1;
}

/* ---------------------------------------------------------------- watcher */

static void genwatch_note(genwatch_t* w) {
  uint64_t g = mcr_snapshot_generation(w->snap);
  if (g < GENWATCH_MAX_GEN && atomic_load(&w->seen_ns[g]) == 0)
    atomic_store(&w->seen_ns[g], mono_ns());
  atomic_store(&w->gen, g);
}

static void* genwatch_run(void* arg) {
  genwatch_t* w = arg;
  while (!atomic_load(&w->stop)) {
    if (mcr_snapshot_refresh(w->snap) == 1)
      genwatch_note(w);
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

void genwatch_start(genwatch_t* w, const char* ring_dir) {
  memset(w, 0, sizeof *w);
  char err[256] = "";
  int rc = mcr_snapshot_open(&w->snap, ring_dir, NULL, err, sizeof err);
  cr_assert_eq(rc, 0, "snapshot open %s: %s", ring_dir, err);
  genwatch_note(w);
  cr_assert_eq(pthread_create(&w->thread, NULL, genwatch_run, w), 0);
}

void genwatch_stop(genwatch_t* w) {
  if (!w->snap)
    return;
  atomic_store(&w->stop, true);
  pthread_join(w->thread, NULL);
  mcr_snapshot_free(w->snap);
  w->snap = NULL;
}

uint64_t genwatch_wait(genwatch_t* w, uint64_t want, int timeout_ms) {
  int64_t end = mono_ns() + (int64_t)timeout_ms * 1000000;
  uint64_t g;
  while ((g = atomic_load(&w->gen)) < want) {
    if (mono_ns() > end)
      cr_assert_fail("generation %llu not seen within %d ms (at %llu)",
                     (unsigned long long)want, timeout_ms,
                     (unsigned long long)g);
    sleep_msec(1);
  }
  return g;
}

int64_t genwatch_seen_ns(genwatch_t* w, uint64_t g) {
  return g < GENWATCH_MAX_GEN ? atomic_load(&w->seen_ns[g]) : 0;
}
