/* cluster.h — a whole mcring deployment on loopback, for end-to-end tests.
 *
 * One cluster_t is what a host in production has: several real memcached
 * (support.h's mcd_*), a fake ElastiCache configuration endpoint
 * (fakecfg.h) listing some of them, and the real mcring-agent binary
 * ($MCR_TOP_BUILDDIR/mcring-agent) polling that endpoint and publishing
 * the ring into a private mkdtemp directory. A test changes the cluster by
 * choosing which memcached the endpoint lists (cluster_list), and kills or
 * restarts the agent at will. A genwatch_t watches the published
 * generation from a thread of the test process, the way a worker sees it
 * (mcr_snapshot_open / mcr_snapshot_refresh), and notes when each
 * generation appeared, on CLOCK_MONOTONIC.
 *
 * Every helper fails the current Criterion test on a setup error; run
 * them in the test process only, never in a forked worker.
 */
#ifndef MCR_TEST_CLUSTER_H
#define MCR_TEST_CLUSTER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fakecfg.h"
#include "support.h"

#define CLUSTER_MAX_NODES 8
#define GENWATCH_MAX_GEN 64

typedef struct {
  char dir[64];   /* the test's private directory (mkdtemp) */
  char ring[96];  /* the agent's ring directory inside it */
  char nodes[96]; /* the endpoint's node file */
  char conf[96];  /* an empty agent config file */
  char log[96];   /* the agent's stderr */
  char interval[16];
  int nmcd;
  mcd_t mcd[CLUSTER_MAX_NODES];
  unsigned listed; /* bit i: mcd[i] is in the node file */
  fakecfg_t* fake;
  pid_t agent; /* 0 when not running */
} cluster_t;

/* Starts `nmcd` memcached, lists those in `listed` (bit i = mcd[i]) at the
 * fake endpoint, and starts the agent with --interval `interval` (seconds,
 * as text, "0.1"). Returns once generation 1 or later is published. */
void cluster_start(cluster_t* cl, int nmcd, unsigned listed,
                   const char* interval);
/* Stops the agent (SIGTERM), the endpoint and every memcached; removes the
 * directory. Safe after a failed or partial start. */
void cluster_stop(cluster_t* cl);

/* Rewrites the node file to list exactly the memcached in `listed`. The
 * agent publishes the change on its next poll. */
void cluster_list(cluster_t* cl, unsigned listed);

/* Starts the agent (it must not be running). */
void cluster_agent_start(cluster_t* cl);
/* Sends `sig` to the agent and reaps it. */
void cluster_agent_kill(cluster_t* cl, int sig);

/* Index into cl->mcd of the node listening on `port`, or -1. */
int cluster_node_of_port(const cluster_t* cl, int port);

/* Nanoseconds on CLOCK_MONOTONIC (comparable across processes). */
int64_t mono_ns(void);
/* Sleeps `ms` milliseconds. */
void sleep_msec(int ms);

/* ---------------------------------------------------------------- watcher */

typedef struct {
  pthread_t thread;
  atomic_bool stop;
  mcr_snapshot_t* snap;
  atomic_uint_fast64_t gen; /* latest generation seen */
  /* seen_ns[g]: when the watcher first saw generation g (0: never). */
  atomic_int_fast64_t seen_ns[GENWATCH_MAX_GEN];
} genwatch_t;

/* Opens the ring directory and starts polling it every 200 us. */
void genwatch_start(genwatch_t* w, const char* ring_dir);
void genwatch_stop(genwatch_t* w);
/* Waits until the watcher has seen a generation >= want; returns it. */
uint64_t genwatch_wait(genwatch_t* w, uint64_t want, int timeout_ms);
/* When generation g was first seen, or 0. */
int64_t genwatch_seen_ns(genwatch_t* w, uint64_t g);

#endif /* MCR_TEST_CLUSTER_H */
