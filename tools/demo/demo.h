/* demo.h — tools/demo/demo, the demo behind `bash tools/run demo`: the
 * main job of mcring, one agent and one shared ring serving a pre-forked
 * server whose memcached cluster changes under live traffic.
 *
 * One program orchestrates everything, so that one place owns every
 * process and can stop them all, also on Ctrl-C; every child also dies
 * with the master if that one is SIGKILLed (tools/deploy.h). The parts:
 *
 *  cluster.c  the deployment: 3 memcached on free 127.0.0.1 ports, a node
 *             file listing them, the fake ElastiCache configuration
 *             endpoint (tests/fakecfg) serving it, mcring-agent polling it
 *             every 0.2 s into a private ring directory, the forked
 *             workers, and the registry that stops and reaps them all;
 *  worker.c   the workers' cache-aside traffic, every read checked against
 *             the exact value last written, counters in shared memory;
 *  steps.c    the scenario: add a node, remove one, kill the agent with
 *             SIGKILL, start it again; after each change, when the agent
 *             published, how many keys moved, when each worker switched;
 *  report.c   what is printed: timestamped lines, the per-second progress,
 *             the per-worker tables and the final checks;
 *  main.c     the command line, the master's client, the timeline.
 *
 * All state is in one demo_t the master passes around; the workers see
 * only their slot of the shared block (shm_t). The one global is the flag
 * the signal handler sets.
 *
 * Exit status: 0 when every check passed (no wrong value, no error, every
 * worker switched to every new generation, nothing died), 1 when one
 * failed, 2 on bad usage or when the setup failed, 130 when interrupted.
 */
#ifndef MCR_DEMO_H
#define MCR_DEMO_H

#include <mcring.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define MAX_WORKERS 64
#define MAX_NODES 4
#define MAX_CHILDREN (MAX_WORKERS + 16)
/* Keys in one get_multi of a worker. */
#define MULTI_KEYS 4
/* Keys used to measure how much of the ring moved. */
#define SAMPLE_KEYS 20000

/* ------------------------------------------------- shared worker stats */

/* One slot per worker, written only by that worker (relaxed stores of
 * monotonic counters; gen is stored with release after switch_ns, so a
 * master that loads gen with acquire sees the matching switch_ns), read
 * by the master. */
typedef struct {
  uint64_t ops;     /* calls made */
  uint64_t lookups; /* keys looked up (a get_multi counts each key) */
  uint64_t hits;
  uint64_t sets;
  uint64_t errors;    /* negative results of any call */
  uint64_t wrong;     /* values that were not exactly the one last written */
  uint64_t gen;       /* generation the last call was routed by */
  uint64_t switch_ns; /* CLOCK_REALTIME when gen was first used */
  uint64_t ring_errors;
  int32_t pid;
  int32_t note_set;
  char note[200]; /* the first error or wrong value, for the report */
} __attribute__((aligned(64))) wslot_t;

typedef struct {
  int32_t stop; /* set by the master: workers finish their call and exit */
  wslot_t w[MAX_WORKERS];
} shm_t;

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* A copy of the counters of every worker at one moment. */
typedef struct {
  uint64_t ops, lookups, hits, errors, wrong, gen;
} wsample_t;

typedef struct {
  double t; /* CLOCK_MONOTONIC seconds */
  wsample_t w[MAX_WORKERS];
} sample_t;

/* ---------------------------------------------------------------- state */

typedef struct {
  const char* build_dir;
  const char* agent;
  const char* fakecfg;
  const char* memcached;
  double duration;
  int workers;
  int keys;
  char agent_buf[4096], fakecfg_buf[4096]; /* paths under build_dir */
} conf_t;

typedef enum { K_MEMCACHED, K_FAKECFG, K_AGENT, K_WORKER } kind_t;

typedef struct {
  pid_t pid; /* 0 once reaped */
  kind_t kind;
  int index;       /* node or worker number */
  bool expect_end; /* we stopped it: its exit is not a failure */
} child_t;

typedef struct {
  char name[16]; /* mc1 .. mc4 */
  int port;
  pid_t pid;
  bool listed; /* in the node file */
} node_t;

typedef struct {
  conf_t cf;
  double t0; /* program start, CLOCK_MONOTONIC seconds */
  bool failed;
  /* The deployment (cluster.c). */
  char tmp[256];  /* private directory: node file, ring, logs */
  char ring[320]; /* the agent's ring directory inside it */
  char endpoint[64];
  node_t nodes[MAX_NODES];
  pid_t agent;
  child_t children[MAX_CHILDREN];
  int nchildren;
  /* The traffic (worker.c) and what the master saw of it (steps.c). */
  shm_t* shm;
  mcr_snapshot_t* snap;           /* the master's own view of the ring */
  int64_t switch_ms[MAX_WORKERS]; /* last switch, ms after a change */
  int64_t slowest_ms;             /* over every change */
} demo_t;

/* What the scenario keeps from one step to the next (steps.c). */
typedef struct {
  uint16_t before[SAMPLE_KEYS]; /* owner port of each sample key */
  uint16_t after[SAMPLE_KEYS];
  uint64_t kill_gen; /* generation published when the agent died */
  sample_t kill_sample;
} scenario_t;

/* ---------------------------------------------------------------- main.c */

/* The signal the master caught (SIGINT, SIGTERM, SIGHUP), or 0. */
extern volatile sig_atomic_t demo_interrupted;

/* Sleeps `s` seconds unless interrupted. Returns false when interrupted. */
bool nap(double s);

static inline int64_t clock_ns(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static inline int64_t real_ns(void) {
  return clock_ns(CLOCK_REALTIME);
}
static inline double mono_s(void) {
  return (double)clock_ns(CLOCK_MONOTONIC) / 1e9;
}

/* ---------------------------------------------------------------- cluster.c */

/* Starts memcached mc<i+1> on a free port. 0, or -1 (said why). */
int node_start(demo_t* d, int i);
/* Writes the node file the fake endpoint serves (temp + rename). */
int nodes_write(demo_t* d);
/* Starts mcring-agent on the endpoint and d->ring. 0 or -1. */
int agent_start(demo_t* d);
/* Waits up to timeout_s for a generation >= want in d->ring; ends early
 * when interrupted or when the agent exits. Returns it, or 0. */
uint64_t agent_wait_gen(demo_t* d, uint64_t want, double timeout_s);
/* Starts the three nodes, the endpoint and the agent; opens d->snap on
 * the first ring. 0, or -1 (said why). */
int cluster_start(demo_t* d);
/* Forks the workers on the master's client `c`. 0, or -1 when fork
 * failed (reported). */
int cluster_fork_workers(demo_t* d, mcr_client_t* c);
/* Stops a child we started on purpose with `sig` and reaps it (SIGKILL
 * after 3 s). */
void child_stop(demo_t* d, pid_t pid, int sig);
/* Reaps children that exited; one we did not stop is a failure (said).
 * False when there was one. */
bool children_check(demo_t* d);
/* Stops every process we started (workers first, letting them finish
 * their call), frees d->snap and removes the private directory.
 * Idempotent. */
void cluster_stop(demo_t* d);

/* ---------------------------------------------------------------- worker.c */

/* A worker's life: cache-aside traffic with the inherited client `c` on
 * `nkeys` keys of its own until shm->stop; then frees `c` and _exits. */
void worker_run(shm_t* shm, int w, mcr_client_t* c, int nkeys)
    __attribute__((noreturn));

/* ---------------------------------------------------------------- steps.c */

/* "mc1 33.2%  mc2 34.0%  mc3 32.8%": each node's share of the key space
 * in the master's view of the ring. */
void ring_shares(const demo_t* d, char* out, size_t cap);
/* Runs step `i` (0 to 3) of the scenario. False when it failed (said). */
bool scenario_step(demo_t* d, scenario_t* sc, int i);

/* ---------------------------------------------------------------- report.c */

/* One timestamped line: "[  4.1s] <text>". */
void say(const demo_t* d, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Like say() with "FAILED: ", and the demo will exit non-zero. */
void fail(demo_t* d, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The last 8 lines of the log file `name` in the private directory. */
void log_tail(const demo_t* d, const char* name);
/* What the demo does, before it starts. */
void report_header(const conf_t* cf);
void sample_take(const demo_t* d, sample_t* s);
/* The sums over every worker. */
void sample_totals(const demo_t* d, const sample_t* s, wsample_t* t);
double pct(uint64_t a, uint64_t b);
/* One line per second between the steps: traffic over a..b. */
void report_progress(const demo_t* d, const sample_t* a, const sample_t* b);
/* The per-worker table: ops/s and hit rate over a..b, errors and wrong
 * values since the start. */
void report_workers(const demo_t* d, const sample_t* a, const sample_t* b,
                    const char* title);
/* The summary table and the checks; sets d->failed when one failed. */
void report_final(demo_t* d, const sample_t* start, const sample_t* end,
                  int steps_done);

#endif /* MCR_DEMO_H */
