/* test_e2e.c — the whole system under traffic: agent, endpoint, memcached,
 * and pre-forked workers.
 *
 * Each test builds a deployment of its own (support/cluster.c): four real
 * memcached, the fake ElastiCache endpoint listing some of them, and the
 * real mcring-agent polling it every 0.1 s into a mkdtemp ring directory.
 * The test process then does what a pre-forking server does: it creates
 * one client on the ring directory, uses it (it stores the "pre" keys),
 * and forks 8 workers that keep using the inherited handle. Workers run
 * mixed traffic until told to stop: set and read back their own keys, read
 * other workers' keys, read the pre keys. While they run, the test grows
 * and shrinks the cluster, kills or hangs a memcached, or SIGKILLs the
 * agent, and afterwards checks what the workers recorded:
 *
 *  - every value read names its own key and a writer allowed to write it,
 *    and carries a good checksum: 0 wrong values, ever;
 *  - every worker routes by a new generation within interval + 100 ms of
 *    its publication: a watcher thread in the test process notes when it
 *    saw each generation (mcr_snapshot_refresh every 200 us), each worker
 *    notes when mcr_client_generation() first returned it, both on
 *    CLOCK_MONOTONIC in MAP_SHARED memory;
 *  - a pre key whose owner (host and port) is the same in the worker's
 *    current ring as in the ring it was stored under never misses, and a
 *    key a worker stored is read back exactly within the same generation;
 *  - a dead node costs only its own keys, each failing call returns within
 *    the I/O timeout + 50 ms, calls fail at once (MCR_ENODEDOWN) once the
 *    node is marked down, nothing fails with ignore_errors (misses
 *    instead), and the node takes traffic again after it comes back;
 *  - with the agent SIGKILLed, workers keep serving on the last ring, and
 *    a restarted agent carries the generation on.
 *
 * Workers never call Criterion: they count and describe violations in the
 * shared memory, and the test process asserts on them.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"

#define WORKERS 8
#define OWN_KEYS 64  /* keys each worker writes: w<id>-<n> */
#define PRE_KEYS 800 /* keys stored by the master before forking */
#define PRE_WRITER 99
#define INTERVAL "0.1"
#define INTERVAL_MS 100
#define SWITCH_BOUND_MS (INTERVAL_MS + TEST_SLACK_MS)
#define MS 1000000LL /* ns */

/* What one worker records. Fields marked (live) are read by the test
 * process while the worker runs; the rest only after it exited. */
typedef struct {
  atomic_uint_fast64_t gen;                        /* (live) routed by */
  atomic_int_fast64_t switch_ns[GENWATCH_MAX_GEN]; /* (live) first seen */
  /* (live) start of the first call routed by generation g, and of the
   * last call before it (routed by an older one). */
  atomic_int_fast64_t first_start_ns[GENWATCH_MAX_GEN];
  atomic_int_fast64_t prev_start_ns[GENWATCH_MAX_GEN];
  atomic_uint_fast64_t ops;              /* (live) calls made */
  atomic_uint_fast64_t failures;         /* (live) */
  atomic_uint_fast64_t ok_after_restart; /* (live) on the revived node */
  int64_t last_fail_ns;
  uint64_t hits, misses, stores;
  uint64_t nodedown;       /* MCR_ENODEDOWN returned */
  uint64_t slow_fails;     /* other failures (a real attempt) */
  uint64_t negative;       /* negative codes (a violation with ignore_errors) */
  uint64_t wrong;          /* a value that is not what the key may hold */
  uint64_t stable_miss;    /* a pre key missed on its unchanged owner */
  uint64_t rw_miss;        /* own key missed or stale in its write's gen */
  uint64_t foreign_fail;   /* a failure on a node that was not made to fail */
  uint64_t pre_moved_miss; /* misses on moved pre keys (allowed) */
  int64_t max_nodedown_ns; /* slowest MCR_ENODEDOWN */
  int64_t max_fail_ns;     /* slowest other failure */
  int64_t max_dead_ns;     /* slowest call of any outcome on the dead node */
  uint64_t ignored;        /* mcr_client_stats ignored_errors at exit */
  char why[256];           /* the first violation */
} wstat_t;

typedef struct {
  atomic_int stop;
  atomic_int dead_port;         /* port of the node made to fail, 0 = none */
  atomic_int_fast64_t back_ns;  /* when it came back, 0 = not yet */
  uint16_t pre_owner[PRE_KEYS]; /* port owning pre-<k> when stored */
  wstat_t w[WORKERS];
} shm_t;

/* ---------------------------------------------------------------- values */

static uint32_t fnv1a(const char* p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 16777619u;
  return h;
}

/* "k=<key> w=<writer> s=<seq> p=<pad> c=<fnv1a of all before ' c='>", the
 * pad 0..39 bytes long so that values vary in size. */
static size_t val_make(char* out, size_t cap, const char* key, int writer,
                       uint64_t seq) {
  int n = snprintf(out, cap, "k=%s w=%d s=%" PRIu64 " p=", key, writer, seq);
  size_t len = (size_t)n;
  size_t pad = (size_t)((seq * 7 + (uint64_t)writer) % 40);
  for (size_t i = 0; i < pad && len + 1 < cap; i++)
    out[len++] = (char)('a' + (seq + i) % 26);
  len += (size_t)snprintf(out + len, cap - len, " c=%08x", fnv1a(out, len));
  return len;
}

/* True when v[0..len) is a well-formed value of `key`; sets *writer and
 * *seq. */
static bool val_parse(const char* v, size_t len, const char* key, int* writer,
                      uint64_t* seq) {
  char buf[256];
  if (len < 12 || len >= sizeof buf)
    return false;
  memcpy(buf, v, len);
  buf[len] = '\0';
  char* c = strstr(buf, " c=");
  if (!c || strlen(c) != 11)
    return false;
  unsigned sum;
  if (sscanf(c, " c=%8x", &sum) != 1 || sum != fnv1a(buf, (size_t)(c - buf)))
    return false;
  char k[128];
  if (sscanf(buf, "k=%127s w=%d s=%" SCNu64 " p=", k, writer, seq) != 3)
    return false;
  return strcmp(k, key) == 0;
}

/* ---------------------------------------------------------------- worker */

typedef struct {
  mcr_client_t* c;
  shm_t* shm;
  wstat_t* w;
  int id;
  uint64_t gen;
  int64_t prev_t0; /* start of the previous call */
  uint64_t rng;
  uint64_t last_seq[OWN_KEYS]; /* highest seq possibly stored */
  uint64_t ok_seq[OWN_KEYS];   /* seq stored for sure, at ok_gen */
  uint64_t ok_gen[OWN_KEYS];   /* 0: unknown (a write failed since) */
} worker_t;

static void violation(worker_t* k, uint64_t* counter, const char* fmt,
                      const char* key, const char* detail) {
  (*counter)++;
  if (k->w->why[0] == '\0')
    snprintf(k->w->why, sizeof k->w->why, "worker %d gen %" PRIu64 ": %s %s%s",
             k->id, k->gen, fmt, key, detail ? detail : "");
}

static uint64_t next_rand(worker_t* k) {
  k->rng ^= k->rng << 13;
  k->rng ^= k->rng >> 7;
  k->rng ^= k->rng << 17;
  return k->rng;
}

/* Port of the node the worker's current ring gives `key`. */
static int key_port(mcr_client_t* c, const char* key) {
  const mcr_ring_t* r = mcr_client_ring(c);
  mcr_ring_node_t n;
  if (!r || mcr_ring_node(r, mcr_ring_locate(r, key, strlen(key)), &n) != 0)
    return -1;
  return n.port;
}

/* Notes a generation change after a call that started at t0 (the switch
 * happens at the start of a call, so the end of that call is when the
 * worker had routed by it, give or take the call's own duration). */
static void note_gen(worker_t* k, int64_t t0) {
  uint64_t g = mcr_client_generation(k->c);
  if (g != k->gen) {
    if (g < GENWATCH_MAX_GEN && atomic_load(&k->w->switch_ns[g]) == 0) {
      atomic_store(&k->w->first_start_ns[g], t0);
      atomic_store(&k->w->prev_start_ns[g], k->prev_t0);
      atomic_store(&k->w->switch_ns[g], mono_ns());
    }
    k->gen = g;
    atomic_store(&k->w->gen, g);
  }
  k->prev_t0 = t0;
}

/* Accounts one call that took `ns`; returns true when it failed (an error,
 * or an error turned into a miss by ignore_errors). */
static bool account(worker_t* k, const char* key, int rc, uint64_t ignored0,
                    int64_t t0) {
  int64_t now = mono_ns(), ns = now - t0;
  note_gen(k, t0);
  atomic_fetch_add(&k->w->ops, 1);
  mcr_client_stats_t st;
  mcr_client_stats(k->c, &st);
  bool failed = rc < 0 || st.ignored_errors != ignored0;
  int port = key_port(k->c, key);
  int dead = atomic_load(&k->shm->dead_port);
  bool on_dead = dead && port == dead;
  if (on_dead && ns > k->w->max_dead_ns)
    k->w->max_dead_ns = ns;
  if (rc < 0)
    k->w->negative++;
  if (!failed) {
    if (on_dead && atomic_load(&k->shm->back_ns))
      atomic_fetch_add(&k->w->ok_after_restart, 1);
    return false;
  }
  atomic_fetch_add(&k->w->failures, 1);
  k->w->last_fail_ns = now;
  if (!on_dead) {
    char d[96];
    snprintf(d, sizeof d, " -> %s (%s)", rc < 0 ? mcr_err_name(rc) : "ignored",
             mcr_client_last_error(k->c));
    violation(k, &k->w->foreign_fail, "failure on a live node:", key, d);
  }
  /* Under ignore_errors the code is gone; the message tells (marked down
   * by this handle, or by another worker of the host). */
  if (rc == MCR_ENODEDOWN ||
      (rc >= 0 && (strstr(mcr_client_last_error(k->c), "down after") ||
                   strstr(mcr_client_last_error(k->c), "host-wide")))) {
    k->w->nodedown++;
    if (ns > k->w->max_nodedown_ns)
      k->w->max_nodedown_ns = ns;
  } else {
    k->w->slow_fails++;
    if (ns > k->w->max_fail_ns)
      k->w->max_fail_ns = ns;
  }
  return true;
}

static uint64_t ignored_now(mcr_client_t* c) {
  mcr_client_stats_t st;
  mcr_client_stats(c, &st);
  return st.ignored_errors;
}

/* Checks a hit on `key`, which only `writer` may have written. */
static bool check_value(worker_t* k, const char* key, const mcr_item_t* it,
                        int writer, uint64_t* seq) {
  int w;
  if (!val_parse(it->value, it->value_len, key, &w, seq) || w != writer) {
    char d[128];
    snprintf(d, sizeof d, " = \"%.*s\"",
             (int)(it->value_len < 80 ? it->value_len : 80), it->value);
    violation(k, &k->w->wrong, "wrong value for", key, d);
    return false;
  }
  return true;
}

/* Set then get one of the worker's own keys. */
static void own_key(worker_t* k, uint64_t seq) {
  int n = (int)(next_rand(k) % OWN_KEYS);
  char key[32], val[256];
  snprintf(key, sizeof key, "w%d-%d", k->id, n);
  size_t vl = val_make(val, sizeof val, key, k->id, seq);
  uint64_t ig = ignored_now(k->c);
  int64_t t0 = mono_ns();
  int rc = mcr_client_set(k->c, key, strlen(key), val, vl, 0, 0, 0);
  bool failed = account(k, key, rc, ig, t0);
  k->last_seq[n] = seq;
  if (failed || rc != MCR_OK) {
    k->ok_gen[n] = 0;
  } else {
    k->w->stores++;
    k->ok_seq[n] = seq;
    k->ok_gen[n] = k->gen;
  }

  mcr_item_t it;
  ig = ignored_now(k->c);
  t0 = mono_ns();
  rc = mcr_client_get(k->c, key, strlen(key), &it);
  failed = account(k, key, rc, ig, t0);
  bool same_gen = k->ok_gen[n] != 0 && k->ok_gen[n] == k->gen;
  uint64_t got;
  if (rc == MCR_OK) {
    k->w->hits++;
    if (!check_value(k, key, &it, k->id, &got))
      return;
    if (got > k->last_seq[n]) {
      violation(k, &k->w->wrong, "value from the future for", key, NULL);
    } else if (same_gen && got != k->ok_seq[n]) {
      violation(k, &k->w->rw_miss, "stale read in the write's generation:", key,
                NULL);
    }
  } else if (rc == MCR_MISS) {
    k->w->misses++;
    if (!failed && same_gen)
      violation(k, &k->w->rw_miss, "miss in the write's generation:", key,
                NULL);
  }
}

/* Get another worker's key: only that worker may have written it. */
static void other_key(worker_t* k) {
  int o = (int)(next_rand(k) % WORKERS);
  char key[32];
  snprintf(key, sizeof key, "w%d-%d", o, (int)(next_rand(k) % OWN_KEYS));
  mcr_item_t it;
  uint64_t ig = ignored_now(k->c), seq;
  int64_t t0 = mono_ns();
  int rc = mcr_client_get(k->c, key, strlen(key), &it);
  account(k, key, rc, ig, t0);
  if (rc == MCR_OK) {
    k->w->hits++;
    check_value(k, key, &it, o, &seq);
  } else if (rc == MCR_MISS) {
    k->w->misses++;
  }
}

/* Get a pre key: a miss is allowed only when its owner changed since it
 * was stored, or its owner is the node made to fail. */
static void pre_key(worker_t* k) {
  int p = (int)(next_rand(k) % PRE_KEYS);
  char key[32];
  snprintf(key, sizeof key, "pre-%d", p);
  mcr_item_t it;
  uint64_t ig = ignored_now(k->c), seq;
  int64_t t0 = mono_ns();
  int rc = mcr_client_get(k->c, key, strlen(key), &it);
  bool failed = account(k, key, rc, ig, t0);
  if (rc == MCR_OK) {
    k->w->hits++;
    if (check_value(k, key, &it, PRE_WRITER, &seq) && seq != 0)
      violation(k, &k->w->wrong, "pre key rewritten:", key, NULL);
  } else if (rc == MCR_MISS && !failed) {
    k->w->misses++;
    int port = key_port(k->c, key);
    if (port == atomic_load(&k->shm->dead_port))
      return;
    if (port != k->shm->pre_owner[p]) {
      k->w->pre_moved_miss++;
      return;
    }
    char d[64];
    snprintf(d, sizeof d, " (owner port %d, unchanged)", port);
    violation(k, &k->w->stable_miss, "pre key missed:", key, d);
  }
}

static int worker_main(mcr_client_t* c, shm_t* shm, int id) {
  static worker_t k; /* the child's own copy */
  memset(&k, 0, sizeof k);
  k.c = c;
  k.shm = shm;
  k.w = &shm->w[id];
  k.id = id;
  k.rng = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
  note_gen(&k, mono_ns());
  for (uint64_t seq = 1; !atomic_load(&shm->stop); seq++) {
    own_key(&k, seq);
    other_key(&k);
    pre_key(&k);
    /* A server between requests; also keeps 8 workers per test from
     * starving the other processes of a small machine. */
    struct timespec ts = {0, 500000};
    nanosleep(&ts, NULL);
  }
  k.w->ignored = ignored_now(c);
  /* Last act: keys written by the final ring, for the master to find. */
  for (int i = 0; i < 16; i++) {
    char key[32], val[256];
    snprintf(key, sizeof key, "fin-w%d-%d", id, i);
    size_t vl = val_make(val, sizeof val, key, id, 1);
    if (mcr_client_set(c, key, strlen(key), val, vl, 0, 0, 0) != MCR_OK)
      violation(&k, &k.w->foreign_fail, "final set failed:", key, NULL);
  }
  mcr_client_free(c);
  return 0;
}

/* ---------------------------------------------------------------- master */

typedef struct {
  cluster_t cl;
  genwatch_t gw;
  mcr_client_t* c;
  mcr_client_opts_t opts;
  shm_t* shm;
  pid_t pids[WORKERS];
} e2e_t;

static shm_t* shm_new(void) {
  void* p = mmap(NULL, sizeof(shm_t), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(p, MAP_FAILED, "mmap");
  memset(p, 0, sizeof(shm_t));
  return p;
}

/* Starts the cluster (nodes in `listed` of 4) and the master's client with
 * the options in t->opts (already initialised by the caller). */
static void e2e_start(e2e_t* t, unsigned listed) {
  cluster_start(&t->cl, 4, listed, INTERVAL);
  genwatch_start(&t->gw, t->cl.ring);
  t->shm = shm_new();
  t->opts.ring_dir = t->cl.ring;
  char err[256] = "";
  int rc = mcr_client_new(&t->c, &t->opts, err, sizeof err);
  cr_assert_eq(rc, 0, "client: %s: %s", mcr_err_name(rc), err);
}

/* The master stores the pre keys (its own connections, which the workers
 * must never reuse) and notes each key's owner. */
static void e2e_store_pre(e2e_t* t) {
  for (int p = 0; p < PRE_KEYS; p++) {
    char key[32], val[256];
    snprintf(key, sizeof key, "pre-%d", p);
    size_t vl = val_make(val, sizeof val, key, PRE_WRITER, 0);
    int rc = mcr_client_set(t->c, key, strlen(key), val, vl, 0, 0, 0);
    cr_assert_eq(rc, MCR_OK, "pre set %s: %s", key,
                 mcr_client_last_error(t->c));
    t->shm->pre_owner[p] = (uint16_t)key_port(t->c, key);
  }
}

/* Forks the workers on the master's client and waits until each made a
 * few hundred calls. */
static void e2e_fork(e2e_t* t) {
  pid_t parent = getpid();
  for (int i = 0; i < WORKERS; i++) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(127);
      _exit(worker_main(t->c, t->shm, i));
    }
    t->pids[i] = pid;
  }
  int64_t end = mono_ns() + 10000 * MS;
  for (int i = 0; i < WORKERS; i++)
    while (atomic_load(&t->shm->w[i].ops) < 200) {
      cr_assert_lt(mono_ns(), end, "worker %d is not running", i);
      sleep_msec(2);
    }
}

/* Stops the workers and expects each to exit 0 within 10 s. */
static void e2e_join(e2e_t* t) {
  atomic_store(&t->shm->stop, 1);
  int64_t end = mono_ns() + 10000 * MS;
  for (int i = 0; i < WORKERS; i++) {
    if (t->pids[i] <= 0)
      continue;
    int st = 0;
    pid_t r;
    while ((r = waitpid(t->pids[i], &st, WNOHANG)) == 0 && mono_ns() < end)
      sleep_msec(2);
    if (r == 0) {
      kill(t->pids[i], SIGKILL);
      waitpid(t->pids[i], &st, 0);
    }
    t->pids[i] = 0;
    cr_expect(r != 0, "worker %d did not stop", i);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "worker %d ended with status 0x%x", i, st);
  }
}

static void e2e_stop(e2e_t* t) {
  for (int i = 0; i < WORKERS; i++)
    if (t->pids[i] > 0) {
      kill(t->pids[i], SIGKILL);
      waitpid(t->pids[i], NULL, 0);
    }
  mcr_client_free(t->c);
  t->c = NULL;
  genwatch_stop(&t->gw);
  cluster_stop(&t->cl);
  if (t->shm)
    munmap(t->shm, sizeof(shm_t));
}

/* Waits until every worker routes by generation >= g. */
static void wait_workers_gen(e2e_t* t, uint64_t g, int timeout_ms) {
  int64_t end = mono_ns() + (int64_t)timeout_ms * MS;
  for (int i = 0; i < WORKERS; i++)
    while (atomic_load(&t->shm->w[i].gen) < g)
      cr_assert_lt(mono_ns(), end,
                   "worker %d still at generation %" PRIu64 " (want %" PRIu64
                   ")",
                   i, (uint64_t)atomic_load(&t->shm->w[i].gen), g);
}

/* Waits until every worker routes by generation g and checks how each got
 * there: no call that started after the watcher saw g was routed by an
 * older ring (exact, whatever the load), and the switch came within
 * interval + 100 ms of the publication (the spec's bound; a worker that
 * was not scheduled, or sat in a slow call, fails it too, and the message
 * says which). Returns the slowest switch in ns. */
static int64_t check_switch(e2e_t* t, uint64_t g) {
  int64_t pub = genwatch_seen_ns(&t->gw, g);
  cr_assert_neq(pub, 0, "the watcher never saw generation %" PRIu64, g);
  wait_workers_gen(t, g, 10000);
  int64_t worst = 0;
  for (int i = 0; i < WORKERS; i++) {
    wstat_t* w = &t->shm->w[i];
    int64_t sw = atomic_load(&w->switch_ns[g]);
    cr_assert_neq(sw, 0, "worker %d never noted generation %" PRIu64, i, g);
    int64_t prev = atomic_load(&w->prev_start_ns[g]) - pub;
    int64_t first = atomic_load(&w->first_start_ns[g]) - pub;
    int64_t lat = sw - pub;
    if (lat > worst)
      worst = lat;
    cr_expect_leq(prev, 0,
                  "worker %d: a call that started %.2f ms after generation "
                  "%" PRIu64 " was published still used the older ring",
                  i, prev / 1e6, g);
    cr_expect_leq(lat, SWITCH_BOUND_MS * MS,
                  "worker %d switched to generation %" PRIu64
                  " %.1f ms after its publication (bound %d ms); its calls "
                  "around it started at %+.1f ms (old ring) and %+.1f ms "
                  "(new ring)",
                  i, g, lat / 1e6, SWITCH_BOUND_MS, prev / 1e6, first / 1e6);
  }
  return worst;
}

/* Publishes `listed` and returns the new generation, once every worker
 * routes by it; asserts the switch bound for each worker. */
static uint64_t change_and_check(e2e_t* t, unsigned listed) {
  uint64_t before = atomic_load(&t->gw.gen);
  int64_t t0 = mono_ns();
  cluster_list(&t->cl, listed);
  uint64_t g = genwatch_wait(&t->gw, before + 1, 3000);
  cr_assert_eq(g, before + 1, "generations skipped: %" PRIu64 " -> %" PRIu64,
               before, g);
  int64_t pub = genwatch_seen_ns(&t->gw, g);
  int64_t worst = check_switch(t, g);
  cr_log_info("generation %" PRIu64
              ": published %.1f ms after the node "
              "list changed; slowest worker switched %.2f ms after that",
              g, (pub - t0) / 1e6, worst / 1e6);
  return g;
}

/* Asserts the invariants every test shares and prints a summary. */
static void check_common(e2e_t* t) {
  uint64_t ops = 0, hits = 0, misses = 0, moved = 0;
  for (int i = 0; i < WORKERS; i++) {
    wstat_t* w = &t->shm->w[i];
    ops += atomic_load(&w->ops);
    hits += w->hits;
    misses += w->misses;
    moved += w->pre_moved_miss;
    cr_expect_eq(w->wrong, 0, "worker %d: %" PRIu64 " wrong values; %s", i,
                 w->wrong, w->why);
    cr_expect_eq(w->stable_miss, 0,
                 "worker %d: %" PRIu64 " misses on unmoved keys; %s", i,
                 w->stable_miss, w->why);
    cr_expect_eq(w->rw_miss, 0,
                 "worker %d: %" PRIu64 " own writes not read back; %s", i,
                 w->rw_miss, w->why);
    cr_expect_eq(w->foreign_fail, 0,
                 "worker %d: %" PRIu64 " failures on live nodes; %s", i,
                 w->foreign_fail, w->why);
  }
  cr_log_info("%" PRIu64 " calls, %" PRIu64 " hits, %" PRIu64
              " misses (%" PRIu64 " on moved pre keys)",
              ops, hits, misses, moved);
}

/* The fin-* keys each worker wrote last are on the node the final ring
 * names (the master's client, refreshed, gives the ring) and nowhere
 * else. */
static void check_final_placement(e2e_t* t) {
  mcr_item_t it;
  mcr_client_get(t->c, "refresh", 7, &it); /* follow the latest ring */
  for (int id = 0; id < WORKERS; id++)
    for (int i = 0; i < 16; i++) {
      char key[32], v[256];
      snprintf(key, sizeof key, "fin-w%d-%d", id, i);
      int owner = cluster_node_of_port(&t->cl, key_port(t->c, key));
      cr_assert_geq(owner, 0);
      for (int j = 0; j < t->cl.nmcd; j++) {
        if (!t->cl.mcd[j].pid)
          continue;
        size_t len;
        uint32_t fl;
        bool hit = raw_get(&t->cl.mcd[j], key, v, sizeof v, &len, &fl);
        cr_expect_eq(hit, j == owner, "%s on node %d, owner is %d", key, j,
                     owner);
      }
    }
}

static void e2e_opts(e2e_t* t) {
  memset(t, 0, sizeof *t);
  mcr_client_opts_init(&t->opts);
}

TestSuite(e2e, .timeout = 60);

/* Grow from 3 to 4 nodes, then shrink to 3 (a different 3), under
 * traffic. */
Test(e2e, grow_and_shrink_during_traffic) {
  e2e_t t;
  e2e_opts(&t);
  e2e_start(&t, 0x7); /* nodes 0, 1, 2 */
  e2e_store_pre(&t);
  e2e_fork(&t);
  sleep_msec(300);

  uint64_t g2 = change_and_check(&t, 0xf); /* node 3 joins */
  sleep_msec(300);
  /* Before node 1 leaves: how many connections it has (workers + master
   * + this stats connection). */
  uint64_t conns_before = mcd_stat(&t.cl.mcd[1], "curr_connections");
  uint64_t g3 = change_and_check(&t, 0xd); /* node 1 leaves */
  cr_assert_eq(g3, g2 + 1);
  sleep_msec(300);

  /* Every worker dropped its connection to the removed node; the master
   * too, once it makes a call. */
  mcr_item_t it;
  mcr_client_get(t.c, "refresh", 7, &it);
  uint64_t conns = 0;
  int64_t end = mono_ns() + 10000 * MS;
  while ((conns = mcd_stat(&t.cl.mcd[1], "curr_connections")) + WORKERS >
             conns_before &&
         mono_ns() < end)
    sleep_msec(10);
  cr_expect_leq(conns + WORKERS, conns_before,
                "node 1 still has %" PRIu64 " connections (%" PRIu64
                " before it left)",
                conns, conns_before);

  e2e_join(&t);
  check_common(&t);
  uint64_t moved = 0;
  for (int i = 0; i < WORKERS; i++) {
    cr_expect_eq(t.shm->w[i].negative, 0, "worker %d: errors; %s", i,
                 t.shm->w[i].why);
    moved += t.shm->w[i].pre_moved_miss;
  }
  cr_expect_gt(moved, 0, "no pre key ever moved: the test proves nothing");
  check_final_placement(&t);
  e2e_stop(&t);
}

/* Kills (or hangs, with SIGSTOP) node 2 of 4 under traffic for 800 ms,
 * then brings it back. */
static void node_failure(bool hang, bool ignore_errors) {
  const int io_ms = 200, retry_ms = 200, limit = 2, dead_ms = 800;
  e2e_t t;
  e2e_opts(&t);
  t.opts.io_timeout_ms = io_ms;
  t.opts.connect_timeout_ms = io_ms;
  t.opts.failure_limit = limit;
  t.opts.retry_timeout_ms = retry_ms;
  t.opts.ignore_errors = ignore_errors;
  e2e_start(&t, 0xf);
  e2e_store_pre(&t);
  e2e_fork(&t);
  sleep_msec(200);

  mcd_t* m = &t.cl.mcd[2];
  atomic_store(&t.shm->dead_port, m->port);
  int64_t dead_from = mono_ns();
  if (hang) {
    mcd_pause(m);
  } else {
    kill(m->pid, SIGKILL);
    mcd_stop(m); /* reaps it */
  }
  sleep_msec(dead_ms);
  if (hang)
    mcd_resume(m);
  else
    mcd_restart(m);
  int64_t back = mono_ns();
  atomic_store(&t.shm->back_ns, back);
  /* Back in use within retry_timeout of the node's last failure (plus a
   * call, plus what a loaded machine adds). */
  int64_t end = back + (retry_ms + io_ms + 2 * TEST_SLACK_MS) * MS;
  for (int i = 0; i < WORKERS; i++)
    while (atomic_load(&t.shm->w[i].ok_after_restart) < 10)
      cr_assert_lt(mono_ns(), end, "worker %d never used node 2 again", i);
  sleep_msec(200);
  e2e_join(&t);
  check_common(&t);

  /* No call outlives connect + I/O timeout (mcring.h). The node was dead
   * for as long as it took to stop and bring it back, which a loaded
   * machine stretches: the retry periods are counted over that. */
  int64_t call_bound = (2 * io_ms + TEST_SLACK_MS) * MS;
  int64_t dead_periods = (back - dead_from) / MS / retry_ms + 1;
  for (int i = 0; i < WORKERS; i++) {
    wstat_t* w = &t.shm->w[i];
    cr_log_info("worker %d: %" PRIu64 " failures (%" PRIu64
                " ENODEDOWN, slowest %.2f ms; %" PRIu64
                " real attempts, slowest %.1f ms), slowest call on node 2 "
                "%.1f ms, %" PRIu64 " ignored",
                i, (uint64_t)atomic_load(&w->failures), w->nodedown,
                w->max_nodedown_ns / 1e6, w->slow_fails, w->max_fail_ns / 1e6,
                w->max_dead_ns / 1e6, w->ignored);
    cr_expect_gt(atomic_load(&w->failures), 0, "worker %d never failed", i);
    cr_expect_leq(w->max_dead_ns, call_bound,
                  "worker %d: a call on the dead node took %.1f ms", i,
                  w->max_dead_ns / 1e6);
    /* After the node is marked down: at most one real attempt per
     * retry_timeout, and the rest fail at once. */
    cr_expect_leq(w->slow_fails, (uint64_t)(limit + dead_periods + 3),
                  "worker %d: %" PRIu64 " real attempts on a down node", i,
                  w->slow_fails);
    /* The last failure comes at most one call plus one retry period after
     * the node is back. */
    cr_expect_leq(w->last_fail_ns,
                  back + (int64_t)(2 * io_ms + retry_ms + TEST_SLACK_MS) * MS,
                  "worker %d failed %.1f ms after the node came back", i,
                  (w->last_fail_ns - back) / 1e6);
    if (ignore_errors) {
      cr_expect_eq(w->negative, 0,
                   "worker %d: %" PRIu64 " errors despite ignore_errors", i,
                   w->negative);
      cr_expect_gt(w->ignored, 0, "worker %d: nothing counted as ignored", i);
    } else {
      /* A down node's keys fail without a network attempt: that is what
       * MCR_ENODEDOWN means, and slow_fails above bounds the attempts. */
      cr_expect_gt(w->nodedown, 0, "worker %d: never MCR_ENODEDOWN", i);
    }
  }
  check_final_placement(&t);
  e2e_stop(&t);
}

Test(e2e, node_killed_fails_fast_and_comes_back) {
  node_failure(false, false);
}

Test(e2e, node_killed_with_ignore_errors_gives_misses) {
  node_failure(false, true);
}

Test(e2e, node_hung_fails_within_io_timeout) {
  node_failure(true, false);
}

/* SIGKILL the agent under traffic: workers keep the last ring; a node
 * added meanwhile shows up once a new agent runs, as the next
 * generation. */
Test(e2e, agent_sigkill_leaves_workers_on_the_last_ring) {
  e2e_t t;
  e2e_opts(&t);
  e2e_start(&t, 0x7);
  e2e_store_pre(&t);
  e2e_fork(&t);
  sleep_msec(200);

  uint64_t g = atomic_load(&t.gw.gen);
  cluster_agent_kill(&t.cl, SIGKILL);
  uint64_t ops0[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    ops0[i] = atomic_load(&t.shm->w[i].ops);
  cluster_list(&t.cl, 0xf); /* nobody polls it now */
  sleep_msec(6 * INTERVAL_MS);
  cr_assert_eq(atomic_load(&t.gw.gen), g, "a generation without an agent");
  for (int i = 0; i < WORKERS; i++) {
    wstat_t* w = &t.shm->w[i];
    cr_expect_eq(atomic_load(&w->gen), g, "worker %d left generation %" PRIu64,
                 i, g);
    cr_expect_geq(atomic_load(&w->ops), ops0[i] + 100,
                  "worker %d: only %" PRIu64 " calls without the agent", i,
                  (uint64_t)(atomic_load(&w->ops) - ops0[i]));
    cr_expect_eq(atomic_load(&w->failures), 0, "worker %d failed; %s", i,
                 w->why);
  }

  /* A new agent carries the generation on and publishes the 4th node. */
  int64_t t0 = mono_ns();
  cluster_agent_start(&t.cl);
  uint64_t g2 = genwatch_wait(&t.gw, g + 1, 3000);
  cr_assert_eq(g2, g + 1,
               "restarted agent published %" PRIu64 " after %" PRIu64, g2, g);
  int64_t pub = genwatch_seen_ns(&t.gw, g2);
  check_switch(&t, g2);
  cr_log_info("restarted agent published generation %" PRIu64
              " %.1f ms after its start",
              g2, (pub - t0) / 1e6);
  sleep_msec(200);
  e2e_join(&t);
  check_common(&t);
  for (int i = 0; i < WORKERS; i++)
    cr_expect_eq(atomic_load(&t.shm->w[i].failures), 0, "worker %d: %s", i,
                 t.shm->w[i].why);
  check_final_placement(&t);
  e2e_stop(&t);
}

/* One test at a time unless --jobs says otherwise: each test runs 8
 * workers and 4 memcached and checks timing bounds, which two such tests
 * sharing a small machine could miss for reasons of their own. */
int main(int argc, char* argv[]) {
  struct criterion_test_set* tests = criterion_initialize();
  criterion_options.jobs = 1;
  int result = 0;
  if (criterion_handle_args(argc, argv, true))
    result = !criterion_run_all_tests(tests);
  criterion_finalize(tests);
  return result;
}
