/* test_chaos_nodes.c — memcached nodes that hang, die and come back.
 *
 * Two faults a worker meets in production, under real traffic:
 *   - a node stopped with SIGSTOP (a hung VM, a swap storm): every call on
 *     its keys must fail within the I/O timeout (plus scheduling slack),
 *     calls on the other nodes must not slow down, and once the node gets
 *     SIGCONT its keys must work again after the retry timeout;
 *   - nodes SIGKILLed and restarted on the same port while forked workers
 *     write and read: losing values is allowed (memcached is a cache),
 *     returning a wrong one is not. Each key has one writer that tags each
 *     value with the key and a sequence number; a read must return this
 *     key's value with a sequence between the last acknowledged write and
 *     the last attempted one.
 * Durations: MCR_CHAOS_SECONDS (default 3) per chaos phase.
 */
#include <inttypes.h>
#include <stdint.h>

#include "chaos.h"

TestSuite(chaos_nodes, .timeout = 90);

/* Index of the node of `c` that is memcached m. */
static size_t node_of(mcr_client_t* c, const mcd_t* m) {
  for (size_t i = 0; i < mcr_client_node_count(c); i++)
    if (strcmp(mcr_client_node_name(c, i), mcd_servers_string(m)) == 0)
      return i;
  cr_assert_fail("node %s not in the client", mcd_servers_string(m));
  return 0;
}

/* Fills keys[] with `want` keys that the ring puts on node `node`. */
static void keys_on(mcr_client_t* c, size_t node, char (*keys)[32],
                    size_t want) {
  const mcr_ring_t* r = mcr_client_ring(c);
  size_t got = 0;
  for (unsigned i = 0; got < want && i < 100000; i++) {
    char k[32];
    int len = snprintf(k, sizeof(k), "chaos-%u", i);
    if (mcr_ring_locate(r, k, (size_t)len) == node)
      snprintf(keys[got++], 32, "%s", k);
  }
  cr_assert_eq(got, want);
}

Test(chaos_nodes, stopped_node_times_out_others_unaffected) {
  mcd_t m[3];
  char servers[512];
  mcd_start_n(m, 3, servers, sizeof(servers));
  mcr_client_opts_t o = opts_default();
  /* One I/O timeout for all nodes: long enough that a get on a healthy
   * node of a loaded sanitizer build never runs out (250 ms did). */
  o.io_timeout_ms = 1000;
  o.connect_timeout_ms = 1000;
  o.failure_limit = 2;
  o.retry_timeout_ms = 1000;
  /* No call lasts longer than connect + I/O timeout (mcring.h), plus what
   * a loaded machine adds. */
  const int64_t bound = o.connect_timeout_ms + o.io_timeout_ms + TEST_SLACK_MS;
  mcr_client_t* c = client_new(servers, &o);
  char keys[3][8][32];
  for (size_t n = 0; n < 3; n++) {
    keys_on(c, node_of(c, &m[n]), keys[n], 8);
    for (int k = 0; k < 8; k++)
      cl_set(c, keys[n][k], keys[n][k]);
  }

  mcd_pause(&m[1]);
  int64_t worst_stopped = 0, worst_other = 0;
  int timeouts = 0, down = 0;
  double end = chaos_now_s() + chaos_seconds();
  while (chaos_now_s() < end) {
    for (int k = 0; k < 8; k++) {
      mcr_item_t it;
      int64_t t0 = now_ms();
      int rc = mcr_client_get(c, keys[1][k], strlen(keys[1][k]), &it);
      int64_t dt = now_ms() - t0;
      cr_assert(rc == MCR_ETIMEOUT || rc == MCR_ENODEDOWN,
                "stopped node: got %s", mcr_err_name(rc));
      timeouts += rc == MCR_ETIMEOUT;
      down += rc == MCR_ENODEDOWN;
      if (dt > worst_stopped)
        worst_stopped = dt;
      for (int n = 0; n < 3; n += 2) {
        t0 = now_ms();
        cl_expect(c, keys[n][k], keys[n][k]);
        dt = now_ms() - t0;
        if (dt > worst_other)
          worst_other = dt;
      }
    }
  }
  /* A multi-get across all three: the live nodes' keys hit, the stopped
   * node's keys carry an error, and the whole call is bounded. */
  const char* mk[3] = {keys[0][0], keys[1][0], keys[2][0]};
  size_t ml[3] = {strlen(mk[0]), strlen(mk[1]), strlen(mk[2])};
  mcr_item_t items[3];
  int64_t t0 = now_ms();
  int hits = t_get_multi(c, 3, mk, ml, items);
  int64_t multi_ms = now_ms() - t0;
  cr_expect_eq(hits, 2);
  cr_expect_eq(items[0].status, MCR_OK);
  cr_expect_lt(items[1].status, 0);
  cr_expect_eq(items[2].status, MCR_OK);
  cr_expect_leq(multi_ms, bound, "multi-get took %lld ms", (long long)multi_ms);
  fprintf(stderr,
          "stopped node: %d timeouts, %d fast-failed as down, worst %lld ms; "
          "other nodes worst %lld ms\n",
          timeouts, down, (long long)worst_stopped, (long long)worst_other);
  cr_expect_gt(timeouts, 0);
  cr_expect_leq(worst_stopped, bound, "a call on the stopped node took %lld ms",
                (long long)worst_stopped);
  /* The other nodes were unaffected: every call on them succeeded (each
   * within its own I/O deadline: cl_expect asserts MCR_OK). How fast they
   * were is the machine's business, reported only. */

  /* Back: the node serves its keys again once its retry time is up. */
  mcd_resume(&m[1]);
  int64_t deadline = now_ms() + 5000;
  mcr_item_t it;
  int rc;
  while ((rc = mcr_client_get(c, keys[1][0], strlen(keys[1][0]), &it)) !=
         MCR_OK) {
    cr_assert(now_ms() < deadline, "node not used again after SIGCONT: %s",
              mcr_err_name(rc));
    usleep(20000);
  }
  for (int k = 0; k < 8; k++)
    cl_expect(c, keys[1][k], keys[1][k]);
  mcr_client_free(c);
  for (int i = 0; i < 3; i++)
    mcd_stop(&m[i]);
}

/* REGRESSION (lib/conn.c): mcring.h promises that failure_limit
 * consecutive "connect or I/O failures" mark a node down for
 * retry_timeout_ms, so its keys then fail at once. A hung node (SIGSTOP:
 * the kernel still accepts connections, nothing answers) fails every call
 * with an I/O timeout, but fill() reports the timeout through
 * mcr__conn_fail(), which does not call node_failed(): the node is never
 * marked down and every call on its keys waits the full io_timeout_ms,
 * for ever. Fails until I/O timeouts count as failures. */
Test(chaos_nodes, hung_node_is_marked_down_after_failure_limit) {
  mcd_t m;
  mcd_start(&m, NULL);
  mcr_client_opts_t o = opts_default();
  o.io_timeout_ms = 100;
  o.failure_limit = 2;
  o.retry_timeout_ms = 5000;
  mcr_client_t* c = client_new(mcd_servers_string(&m), &o);
  cl_set(c, "k", "v");
  mcd_pause(&m);
  mcr_item_t it;
  int rc[4];
  for (int i = 0; i < 4; i++)
    rc[i] = mcr_client_get(c, "k", 1, &it);
  mcd_resume(&m);
  cr_expect_eq(rc[0], MCR_ETIMEOUT, "%s", mcr_err_name(rc[0]));
  cr_expect_eq(rc[1], MCR_ETIMEOUT, "%s", mcr_err_name(rc[1]));
  cr_expect_eq(rc[2], MCR_ENODEDOWN,
               "third call after %d timeouts: %s, not marked down",
               o.failure_limit, mcr_err_name(rc[2]));
  cr_expect_eq(rc[3], MCR_ENODEDOWN, "%s", mcr_err_name(rc[3]));
  mcr_client_free(c);
  mcd_stop(&m);
}

/* ------------------------------------------------ kill and restart */

#define WORKERS 4
#define KEYS_PER_WORKER 64

typedef struct {
  uint64_t ops, hits, misses, errors, wrong;
} tally_t;

/* One worker process: owns keys w<id>-<j>, writes and reads them until
 * `end`, checking every hit; writes its tally to fd. */
static void worker(int id, const char* servers, double end, int fd) {
  mcr_client_opts_t o = opts_default();
  o.servers = servers;
  o.io_timeout_ms = 300;
  o.connect_timeout_ms = 300;
  o.failure_limit = 2;
  o.retry_timeout_ms = 100;
  mcr_client_t* c;
  if (mcr_client_new(&c, &o, NULL, 0) != 0)
    _exit(3);
  uint64_t lo[KEYS_PER_WORKER] = {0}, hi[KEYS_PER_WORKER] = {0};
  tally_t t = {0};
  unsigned seed = (unsigned)(getpid() * 7919);
  uint64_t seq = 0;
  while (chaos_now_s() < end) {
    int j = rand_r(&seed) % KEYS_PER_WORKER;
    char key[32], val[64];
    int kl = snprintf(key, sizeof(key), "w%d-%d", id, j);
    if (rand_r(&seed) % 2) {
      seq++;
      int vl = snprintf(val, sizeof(val), "%s:%" PRIu64, key, seq);
      hi[j] = seq;
      int rc = mcr_client_set(c, key, (size_t)kl, val, (size_t)vl, 0, 0, 0);
      if (rc == MCR_OK)
        lo[j] = seq;
      else
        t.errors++;
    } else {
      mcr_item_t it;
      int rc = mcr_client_get(c, key, (size_t)kl, &it);
      if (rc == MCR_OK) {
        t.hits++;
        char want[40];
        int wl = snprintf(want, sizeof(want), "%s:", key);
        uint64_t s = 0;
        bool ok = it.value_len > (size_t)wl &&
                  memcmp(it.value, want, (size_t)wl) == 0 &&
                  sscanf(it.value + wl, "%" SCNu64, &s) == 1 && s >= lo[j] &&
                  s <= hi[j];
        if (!ok) {
          t.wrong++;
          fprintf(stderr,
                  "WRONG: %s -> %.*s (acked %" PRIu64 ", sent %" PRIu64 ")\n",
                  key, (int)it.value_len, it.value, lo[j], hi[j]);
        }
      } else if (rc == MCR_MISS) {
        t.misses++;
      } else {
        t.errors++;
      }
    }
    t.ops++;
  }
  mcr_client_free(c);
  if (write(fd, &t, sizeof(t)) != (ssize_t)sizeof(t))
    _exit(4);
  _exit(0);
}

Test(chaos_nodes, killed_and_restarted_nodes_zero_wrong_values) {
  chaos_seed("killed_and_restarted_nodes");
  mcd_t m[3];
  char servers[512];
  mcd_start_n(m, 3, servers, sizeof(servers));
  double secs = chaos_seconds();
  double end = chaos_now_s() + secs;
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pids[WORKERS];
  for (int w = 0; w < WORKERS; w++) {
    pids[w] = fork();
    cr_assert_geq(pids[w], 0);
    if (pids[w] == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(fds[0]);
      worker(w, servers, end, fds[1]);
    }
  }
  close(fds[1]);
  int kills = 0;
  while (chaos_now_s() < end - 0.3) {
    usleep(150000 + (useconds_t)(rand() % 250000));
    mcd_t* v = &m[rand() % 3];
    kill(v->pid, SIGKILL);
    usleep((useconds_t)(rand() % 100000));
    mcd_restart(v); /* reaps the killed one, starts on the same port */
    kills++;
  }
  tally_t sum = {0};
  for (int w = 0; w < WORKERS; w++) {
    tally_t t;
    cr_assert_eq(read(fds[0], &t, sizeof(t)), (ssize_t)sizeof(t),
                 "a worker died");
    sum.ops += t.ops;
    sum.hits += t.hits;
    sum.misses += t.misses;
    sum.errors += t.errors;
    sum.wrong += t.wrong;
  }
  for (int w = 0; w < WORKERS; w++) {
    int st;
    waitpid(pids[w], &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d status %d", w,
              st);
  }
  close(fds[0]);
  fprintf(stderr,
          "%d kills in %.1f s: %" PRIu64 " ops, %" PRIu64 " hits, %" PRIu64
          " misses, %" PRIu64 " errors, %" PRIu64 " wrong\n",
          kills, secs, sum.ops, sum.hits, sum.misses, sum.errors, sum.wrong);
  cr_expect_eq(sum.wrong, 0, "%" PRIu64 " wrong values", sum.wrong);
  cr_expect_gt(kills, 0);
  cr_expect_gt(sum.hits, 100, "too little traffic to mean anything");
  /* After the chaos every node serves again. */
  mcr_client_opts_t o = opts_default();
  o.retry_timeout_ms = 100;
  mcr_client_t* c = client_new(servers, &o);
  for (int k = 0; k < 30; k++) {
    char key[16];
    snprintf(key, sizeof(key), "after-%d", k);
    cl_set(c, key, key);
    cl_expect(c, key, key);
  }
  mcr_client_free(c);
  for (int i = 0; i < 3; i++)
    mcd_stop(&m[i]);
}
