/* test_health.c — node health shared by the workers of a host.
 *
 * A ring directory with three real memcached published in it and the
 * agent's host stats server (which hands out the health table) in a thread
 * of the test process. Forked workers, each with a ring_dir client of its
 * own, call the three nodes in a loop and note every call that waited on
 * the node under test, and when they used it again; the test pauses that
 * node (SIGSTOP: it accepts, never answers) or kills and restarts it.
 *
 * What must hold whatever the machine's speed: once one worker has marked
 * the node down, the others stop waiting on it (only the one process that
 * wins each probe does), no new ring generation is published, and every
 * worker uses the node again soon after it answers. The control run with
 * the table switched off shows the test can fail: every worker then waits
 * on its own at every retry. The table is hostile memory too: garbage in it
 * marks a node down for one retry interval at most, never longer.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ring.h"
#include "support.h"

#define NMCD 3
#define WORKERS 32
#define IO_MS 500
#define RETRY_MS 1000
#define LIMIT 2 /* the workers' failure_limit */
/* Every worker uses the node again this soon after it returns (or after
 * the last failure, for a call in flight across its return): a retry
 * interval, the probe's own time, and what a loaded machine adds. */
#define BACK_BOUND_MS (RETRY_MS + 2 * IO_MS + 1250)
#define MAXW 64

static mcd_t m[NMCD];
static char dir[64];
static mcr_hoststats_server_t* srv;

static void setup(void) {
  for (int i = 0; i < NMCD; i++)
    mcd_start(&m[i], NULL);
  ring_dir_make(dir, sizeof dir, "hh");
  char err[256];
  mcr__snapshot_writer_t* w;
  cr_assert_eq(mcr__snapshot_writer_open(&w, dir, err, sizeof err), 0, "%s",
               err);
  mcr__ring_node_in_t in[NMCD];
  for (int i = 0; i < NMCD; i++)
    in[i] = (mcr__ring_node_in_t){
        .host = "127.0.0.1", .port = (uint16_t)m[i].port, .weight = 1};
  cr_assert_eq(
      mcr__snapshot_writer_publish_nodes(w, MCR_DIST_KETAMA, in, NMCD, NULL),
      0);
  mcr__snapshot_writer_close(w);
}

static void serve(void) {
  char err[256];
  cr_assert_eq(mcr_hoststats_serve(&srv, dir, 1024, err, sizeof err), 0, "%s",
               err);
}

static void teardown(void) {
  mcr_hoststats_server_free(srv);
  srv = NULL;
  for (int i = 0; i < NMCD; i++)
    mcd_stop(&m[i]);
  ring_dir_remove(dir);
}

TestSuite(health, .init = setup, .fini = teardown, .timeout = 120);

static mcr_client_t* ring_client(int eject, int failure_limit) {
  mcr_client_opts_t o = opts_default();
  o.ring_dir = dir;
  o.io_timeout_ms = IO_MS;
  o.connect_timeout_ms = IO_MS;
  o.failure_limit = failure_limit;
  o.retry_timeout_ms = RETRY_MS;
  o.eject = eject;
  mcr_client_t* c = NULL;
  char err[256];
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  cr_assert_eq(rc, 0, "%s: %s", mcr_err_name(rc), err);
  return c;
}

/* A key that the ring places on memcached `which`, into key[16]. */
static void key_on(mcr_client_t* c, int which, char* key) {
  const mcr_ring_t* r = mcr_client_ring(c);
  cr_assert_not_null(r);
  for (int i = 0; i < 100000; i++) {
    int kl = snprintf(key, 16, "hh%d", i);
    mcr_ring_node_t nd;
    cr_assert_eq(mcr_ring_node(r, mcr_ring_locate(r, key, (size_t)kl), &nd), 0);
    if (nd.port == m[which].port)
      return;
  }
  cr_assert_fail("no key for node %d", which);
}

/* What each worker reports, in memory shared with the test. A call that
 * failed with anything but MCR_ENODEDOWN was a real attempt on the node
 * (on a hung node: MCR_ETIMEOUT, a wait of io_timeout). */
typedef struct {
  int nwaits;
  int64_t wait_start[MAXW]; /* mcr__now_ms() when an attempt began */
  int64_t wait_end[MAXW];   /* and when it returned */
  int wait_rc[MAXW];        /* with what */
  int64_t used_after;       /* first success on the node after `back` */
  int calls, fast_fails;
  int ready;
  int shared; /* the handle got the host's table */
} report_t;

typedef struct {
  _Atomic int64_t go, hurt, back, stop; /* mcr__now_ms(), 0 until set */
  report_t w[WORKERS];
} board_t;

/* A worker: calls the node under test (key k) and another (key other),
 * one every millisecond, until the board says stop. */
static void worker(board_t* b, int i, const char* k, const char* other,
                   int eject) {
  mcr_client_t* c = ring_client(eject, LIMIT);
  report_t* r = &b->w[i];
  mcr_item_t it;
  (void)mcr_client_get(c, k, strlen(k), &it); /* connect before the test */
  r->shared = c->health.table != NULL;
  r->ready = 1;
  while (!atomic_load(&b->go))
    usleep(1000);
  while (!atomic_load(&b->stop)) {
    int64_t t0 = mcr__now_ms();
    int rc = mcr_client_get(c, k, strlen(k), &it);
    int64_t t1 = mcr__now_ms();
    r->calls++;
    if (rc == MCR_ENODEDOWN)
      r->fast_fails++;
    if (rc < 0 && rc != MCR_ENODEDOWN && r->nwaits < MAXW) {
      r->wait_start[r->nwaits] = t0;
      r->wait_rc[r->nwaits] = rc;
      r->wait_end[r->nwaits++] = t1;
    }
    int64_t back = atomic_load(&b->back);
    if (back && t0 >= back && rc >= 0 && !r->used_after)
      r->used_after = t1;
    (void)mcr_client_get(c, other, strlen(other), &it);
    usleep(1000);
  }
  mcr_client_free(c);
  _exit(0);
}

typedef struct {
  int total_waits; /* attempts that began while the node was out */
  int late_waits;  /* of them, after the host marked it down */
  int late_bound;  /* one per retry interval the node was out, and two */
  /* Longest time from the node's return (or its last failure, when a call
   * in flight across the return failed after it) to a worker's use. */
  int64_t worst_return_ms;
  int calls, fast_fails;
} outcome_t;

static int cmp_i64(const void* a, const void* b) {
  int64_t x = *(const int64_t*)a, y = *(const int64_t*)b;
  return x < y ? -1 : x > y;
}

/* Runs WORKERS workers against node 1: `hurt` hurts it at go + 300 ms,
 * `heal` heals it `hold_ms` later; the workers stop 2.5 retry intervals
 * after that. */
static outcome_t incident(void (*hurt)(mcd_t*), void (*heal)(mcd_t*),
                          int hold_ms, int eject) {
  board_t* b = mmap(NULL, sizeof(board_t), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(b, MAP_FAILED);
  memset(b, 0, sizeof *b);
  char k[16], other[16];
  mcr_client_t* c = ring_client(0, 1);
  key_on(c, 1, k);
  key_on(c, 0, other);
  uint64_t gen = mcr_ring_generation(mcr_client_ring(c));
  cr_assert_eq(mcr_client_set(c, k, strlen(k), "v", 1, 0, 0, 0), MCR_OK);
  pid_t pids[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    pids[i] = fork();
    cr_assert_geq(pids[i], 0);
    if (pids[i] == 0)
      worker(b, i, k, other, eject);
  }
  for (int i = 0; i < WORKERS; i++)
    while (!((volatile report_t*)&b->w[i])->ready)
      usleep(1000);
  int shared = 0;
  for (int i = 0; i < WORKERS; i++)
    shared += b->w[i].shared;
  cr_assert(shared == 0 || shared == WORKERS,
            "%d of %d workers got the host's table", shared, WORKERS);
  atomic_store(&b->go, mcr__now_ms());
  usleep(300 * 1000);
  atomic_store(&b->hurt, mcr__now_ms());
  hurt(&m[1]);
  usleep((useconds_t)hold_ms * 1000);
  heal(&m[1]);
  atomic_store(&b->back, mcr__now_ms());
  /* The workers run until every one used the node again, or until
   * BACK_BOUND_MS after the last failure any of them saw (a loaded machine
   * can stall a resumed memcached thread for a second or two: failures
   * after the return move the bound, as they do in the assertion), 30 s
   * at most. */
  int64_t cap = mcr__now_ms() + 30000;
  for (;;) {
    usleep(50 * 1000);
    int64_t now = mcr__now_ms(), last = atomic_load(&b->back);
    bool all = true;
    for (int i = 0; i < WORKERS; i++) {
      volatile report_t* r = &b->w[i];
      int nw = r->nwaits < MAXW ? r->nwaits : MAXW;
      for (int j = 0; j < nw; j++)
        last = r->wait_end[j] > last ? r->wait_end[j] : last;
      all = all && r->used_after != 0;
    }
    if ((all && now >= last + 500) || now >= last + BACK_BOUND_MS + 500 ||
        now >= cap)
      break;
  }
  atomic_store(&b->stop, mcr__now_ms());
  for (int i = 0; i < WORKERS; i++) {
    int st;
    cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d died", i);
  }
  /* Placement never moved: no ring generation was published. */
  mcr_item_t it;
  (void)mcr_client_get(c, k, strlen(k), &it);
  cr_assert_eq(mcr_ring_generation(mcr_client_ring(c)), gen);
  mcr_client_free(c);

  outcome_t o = {0};
  /* The host marks the node down when the LIMIT-th attempt (of any
   * worker) fails: attempts begun after that are what sharing saves. */
  int64_t ends[WORKERS * MAXW];
  int nends = 0;
  for (int i = 0; i < WORKERS; i++)
    for (int j = 0; j < b->w[i].nwaits; j++)
      if (b->w[i].wait_start[j] >= b->hurt) /* not a loaded machine's */
        ends[nends++] = b->w[i].wait_end[j];
  qsort(ends, (size_t)nends, sizeof ends[0], cmp_i64);
  int64_t first_end = nends >= LIMIT ? ends[LIMIT - 1] : INT64_MAX;
  /* One probe per retry interval while the node was out (a machine that
   * is slow to restart it stretches that), one straddling its return. */
  o.late_bound = (int)((b->back - b->hurt) / RETRY_MS) + 2;
  int64_t last_fail = b->back;
  for (int i = 0; i < WORKERS; i++)
    for (int j = 0; j < b->w[i].nwaits; j++)
      if (b->w[i].wait_end[j] > last_fail)
        last_fail = b->w[i].wait_end[j];
  for (int i = 0; i < WORKERS; i++) {
    report_t* r = &b->w[i];
    for (int j = 0; j < r->nwaits; j++)
      o.total_waits +=
          r->wait_start[j] >= b->hurt && r->wait_start[j] < b->back;
    o.calls += r->calls;
    o.fast_fails += r->fast_fails;
    for (int j = 0; j < r->nwaits; j++)
      /* While the node was out: a loaded machine can starve a memcached
       * thread after its return too, which is a new incident. */
      if (r->wait_start[j] > first_end && r->wait_start[j] < b->back) {
        o.late_waits++;
        cr_log_info("late attempt: worker %d at +%lld ms (%lld ms), %s", i,
                    (long long)(r->wait_start[j] - b->hurt),
                    (long long)(r->wait_end[j] - r->wait_start[j]),
                    mcr_err_name(r->wait_rc[j]));
      }
    int64_t ret = r->used_after ? r->used_after - last_fail : INT64_MAX;
    if (ret > o.worst_return_ms)
      o.worst_return_ms = ret;
  }
  munmap(b, sizeof *b);
  return o;
}

/* A hung node (SIGSTOP for 2 s, 2 retry intervals): the host detects it
 * about once, then one process per retry interval probes it. */
Test(health, a_hung_node_costs_the_host_one_detection) {
  serve();
  outcome_t o = incident(mcd_pause, mcd_resume, 2 * RETRY_MS, 0);
  cr_log_info(
      "hung node: %d waits (%d after the first detection), %d calls, "
      "%d failed fast, every worker back within %lld ms",
      o.total_waits, o.late_waits, o.calls, o.fast_fails,
      (long long)o.worst_return_ms);
  /* The host counts failures in a row together: at most one wait per
   * worker while the first detection is under way (and one more for the
   * LIMIT - 1 whose wait ended before the mark), not LIMIT each; then
   * one probe per retry interval for the whole host. */
  cr_assert_leq(o.late_waits, o.late_bound,
                "%d waits after the node was marked down", o.late_waits);
  cr_assert_leq(o.total_waits, WORKERS + LIMIT - 1 + o.late_bound);
  cr_assert_gt(o.fast_fails, 0);
  /* Everyone used it again within a retry interval (plus the probe's own
   * time and scheduling slack) of its return. */
  cr_assert_leq(o.worst_return_ms, BACK_BOUND_MS,
                "a worker came back %lld ms after the node",
                (long long)o.worst_return_ms);
}

/* The same incident with no table (no agent handing one out): each worker
 * learns alone, and waits again at each of its retries. */
Test(health, without_the_table_every_worker_waits_alone) {
  outcome_t o = incident(mcd_pause, mcd_resume, 2 * RETRY_MS, 0);
  cr_log_info("hung node, no table: %d waits (%d late)", o.total_waits,
              o.late_waits);
  cr_assert_geq(o.late_waits, WORKERS / 2,
                "the control run did not wait alone");
  /* More than the shared run may have: the test can fail. */
  cr_assert_gt(o.total_waits, WORKERS + LIMIT - 1 + o.late_bound,
               "the control run did not wait more than a shared one");
}

static void kill_node(mcd_t* x) {
  mcd_stop(x);
}
static void restart_node(mcd_t* x) {
  mcd_restart(x);
}

/* A killed node (connections refused) then restarted on its port: the
 * host marks it down, its keys fail fast, and every worker uses it again
 * after the restart. */
Test(health, a_killed_node_is_marked_down_once_and_comes_back) {
  serve();
  outcome_t o = incident(kill_node, restart_node, 1500, 0);
  cr_log_info(
      "killed node: %d waits (%d late), %d calls, %d failed fast, "
      "back within %lld ms",
      o.total_waits, o.late_waits, o.calls, o.fast_fails,
      (long long)o.worst_return_ms);
  cr_assert_leq(o.late_waits, o.late_bound,
                "%d attempts after the node was marked down", o.late_waits);
  cr_assert_gt(o.fast_fails, 0);
  cr_assert_leq(o.worst_return_ms, BACK_BOUND_MS);
}

/* --------------------------------------------------- the table is hostile */

static uint64_t* entry_of(mcr_client_t* c, int which) {
  uint64_t id =
      mcr__ring_node_ident("127.0.0.1", "127.0.0.1", (uint16_t)m[which].port);
  return mcr__hh_find(c->health.table, id, false);
}

Test(health, garbage_in_the_table_holds_a_node_down_one_interval_at_most) {
  serve();
  mcr_client_t* c = ring_client(0, 1);
  char k[16];
  key_on(c, 1, k);
  cr_assert_eq(mcr_client_set(c, k, strlen(k), "v", 1, 0, 0, 0), MCR_OK);
  cr_assert_not_null(c->health.table, "the agent handed out no table");
  uint64_t* e = entry_of(c, 1);
  cr_assert_not_null(e, "the node has no entry");
  /* Another process of the group writes a mark that never ends. */
  ck_pr_store_64(&e[1], UINT64_MAX);
  mcr_item_t it;
  int64_t t0 = mcr__now_ms();
  cr_assert_eq(mcr_client_get(c, k, strlen(k), &it), MCR_ENODEDOWN);
  cr_assert(strstr(mcr_client_last_error(c), "host-wide"), "%s",
            mcr_client_last_error(c));
  /* Honoured for our own retry interval, then we probe it ourselves. */
  while (mcr_client_get(c, k, strlen(k), &it) == MCR_ENODEDOWN) {
    cr_assert_lt(mcr__now_ms() - t0, RETRY_MS + 500, "held down too long");
    usleep(20 * 1000);
  }
  cr_assert_geq(mcr__now_ms() - t0, RETRY_MS - 50);
  cr_assert_eq(ck_pr_load_64(&e[1]), 0, "the probe did not set it up");
  /* Every entry of the window scribbled over: the node's health becomes
   * private, nothing faults. */
  for (size_t i = 0; i < MCR__HH_CAP * MCR__HH_WORDS; i += 7)
    c->health.table[i] = 0x5a5a5a5a5a5a5a5aULL * i;
  for (int i = 0; i < 50; i++)
    (void)mcr_client_get(c, k, strlen(k), &it);
  mcr_client_free(c);
}

/* A reader sees what the workers share: down since, by whom, next probe. */
Test(health, readers_see_the_host_wide_state) {
  serve();
  mcr_client_t* c = ring_client(0, 1);
  char k[16];
  key_on(c, 1, k);
  mcd_stop(&m[1]);
  mcr_item_t it;
  cr_assert_lt(mcr_client_get(c, k, strlen(k), &it), 0);
  mcr_hoststats_t* h;
  char err[256];
  cr_assert_eq(mcr_hoststats_open(&h, dir, -1, err, sizeof err), 0, "%s", err);
  mcr_ring_node_t nd;
  const mcr_ring_t* r = mcr_client_ring(c);
  mcr_node_health_t hl;
  cr_assert_eq(mcr_ring_node(r, mcr_ring_locate(r, k, strlen(k)), &nd), 0);
  cr_assert_eq(mcr_hoststats_health(h, &nd, &hl), MCR_ESNAPSHOT);
  const mcr_hoststat_row_t* rows;
  cr_assert_geq(t_hoststats_read(h, &rows), 0);
  cr_assert_eq(mcr_hoststats_health(h, &nd, &hl), 0);
  cr_assert_eq(hl.down, 1);
  cr_assert_eq(hl.pid, (uint32_t)getpid());
  cr_assert_eq(hl.marks, 1);
  cr_assert(hl.next_ms > 0 && hl.next_ms <= RETRY_MS);
  /* Another node: never marked. */
  cr_assert_eq(
      mcr_ring_node(r, (mcr_ring_locate(r, k, strlen(k)) + 1) % 3, &nd), 0);
  cr_assert_eq(mcr_hoststats_health(h, &nd, &hl), 0);
  cr_assert_eq(hl.down, 0);
  cr_assert_eq(hl.marks, 0);
  mcr_hoststats_free(h);
  mcr_client_free(c);
}

/* failure_limit 0 tracks no health: a mark in the table changes nothing. */
Test(health, failure_limit_zero_ignores_the_table) {
  serve();
  mcr_client_t* marker = ring_client(0, 1);
  mcr_client_t* c = ring_client(0, 0);
  char k[16];
  key_on(c, 1, k);
  cr_assert_eq(mcr_client_set(c, k, strlen(k), "v", 1, 0, 0, 0), MCR_OK);
  mcr_item_t it;
  /* The marker uses the node too (a node's entry is claimed on first use). */
  cr_assert_eq(mcr_client_get(marker, k, strlen(k), &it), MCR_OK);
  uint64_t* e = entry_of(marker, 1);
  cr_assert_not_null(e);
  ck_pr_store_64(&e[1], UINT64_MAX);
  cr_assert_eq(mcr_client_get(c, k, strlen(k), &it), MCR_OK);
  cr_assert_eq(mcr_client_get(marker, k, strlen(k), &it), MCR_ENODEDOWN);
  mcr_client_free(c);
  mcr_client_free(marker);
}

/* With eject, a node another process marked down is routed around at
 * once: this handle never touches it. */
Test(health, eject_routes_around_a_node_marked_elsewhere) {
  serve();
  mcr_client_t* c = ring_client(1, 1);
  char k[16];
  key_on(c, 1, k);
  mcd_stop(&m[1]);
  pid_t p = fork();
  cr_assert_geq(p, 0);
  if (p == 0) { /* another worker finds the node dead */
    mcr_client_t* w = ring_client(0, 1);
    mcr_item_t it;
    _exit(mcr_client_get(w, k, strlen(k), &it) < 0 ? 0 : 1);
  }
  int st;
  cr_assert_eq(waitpid(p, &st, 0), p);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  mcr_item_t it;
  /* The first call already goes elsewhere: a try of the dead node would
   * have failed it. */
  cr_assert_eq(mcr_client_set(c, k, strlen(k), "e", 1, 0, 0, 0), MCR_OK);
  cr_assert_eq(mcr_client_get(c, k, strlen(k), &it), MCR_OK);
  mcr_client_free(c);
}
