/* test_lease.c — stampede protection (lease.c) against a real memcached.
 *
 * The stampede tests fork 64 workers that wait on one pipe and are let go
 * together by closing it, so they all read the hot key at the same moment.
 * Each worker opens its own client, asks under a lease, and, when it wins,
 * "computes" for 200 ms and fills. Workers write what they saw into a
 * shared page (MAP_SHARED) and never run Criterion's assertions; the
 * parent checks that exactly one computed and every other one got the
 * value (or, for an invalidated key, the stale one). No test asserts a
 * duration: the wait bound shows as MCR_LEASE_BUSY, never as a clock.
 *
 * The rest: a winner that dies holds the key only until its lease
 * expires, a fill loses to a newer value, a fill after the lease expired
 * adds, recache elects one early recomputer, and every bad argument is
 * refused before anything is sent.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"

#define WORKERS 64
#define COMPUTE_MS 200
/* Above every recache_ttl used here: a worker that reads after the fill
 * must see a hit, not win a second recache of the fresh value. */
#define FILL_TTL 600

static mcd_t mcd;
static mcr_client_t* client;

static void setup(void) {
  mcd_start(&mcd, NULL);
  client = client_new(mcd.servers, NULL);
}

static void teardown(void) {
  mcr_client_free(client);
  client = NULL;
  mcd_stop(&mcd);
}

TestSuite(lease, .init = setup, .fini = teardown, .timeout = 120);

#define K(s) (s), strlen(s)

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* What one worker saw. */
typedef struct {
  int rc;         /* of mcr_client_lease_get */
  int state;      /* MCR_LEASE_* */
  int computed;   /* it won and filled */
  int fill_rc;    /* of mcr_client_lease_fill */
  char value[32]; /* the value it was given (NUL-ended) */
} seen_t;

/* Opens a client in a child; NULL on failure (reported on stderr). */
static mcr_client_t* child_client(void) {
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.servers = mcd.servers;
  o.io_timeout_ms = 5000;
  o.connect_timeout_ms = 5000;
  mcr_client_t* c = NULL;
  char err[256];
  if (mcr_client_new(&c, &o, err, sizeof err) < 0) {
    fprintf(stderr, "child: mcr_client_new: %s\n", err);
    return NULL;
  }
  return c;
}

static void worker(int go, const char* key, const mcr_lease_opts_t* lo,
                   seen_t* me) {
  mcr_client_t* c = child_client();
  if (!c)
    _exit(1);
  char b;
  if (read(go, &b, 1) != 0) /* returns 0 when the parent closes it */
    _exit(2);
  mcr_lease_t l;
  me->rc = mcr_client_lease_get(c, key, strlen(key), lo, &l);
  me->state = l.state;
  if (l.has_value || l.state == MCR_LEASE_HIT)
    snprintf(me->value, sizeof me->value, "%.*s", (int)l.value_len, l.value);
  if (me->rc == MCR_OK && l.state == MCR_LEASE_WON) {
    sleep_ms(COMPUTE_MS);
    me->computed = 1;
    me->fill_rc =
        mcr_client_lease_fill(c, key, strlen(key), "new", 3, FILL_TTL, 0, &l);
  }
  mcr_client_free(c);
  _exit(0);
}

/* Forks WORKERS workers on `key`, lets them go at once, waits for all and
 * returns their reports (a shared page the caller unmaps). */
static seen_t* stampede(const char* key, const mcr_lease_opts_t* lo) {
  seen_t* seen = mmap(NULL, sizeof(seen_t) * WORKERS, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(seen, MAP_FAILED);
  memset(seen, 0, sizeof(seen_t) * WORKERS);
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pids[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    pids[i] = fork();
    cr_assert_geq(pids[i], 0);
    if (pids[i] == 0) {
      close(p[1]);
      worker(p[0], key, lo, &seen[i]);
    }
  }
  close(p[0]);
  sleep_ms(200); /* let them reach read() (not needed for correctness) */
  close(p[1]);
  for (int i = 0; i < WORKERS; i++) {
    int st;
    cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d: status %d", i,
              st);
  }
  return seen;
}

/* Asserts that every worker's call succeeded, that exactly one computed
 * (having been given `winner_value`, or no value when NULL) and stored
 * "new", and that every other one got either `value` in `state` or, after
 * the fill, "new" as a hit. Unmaps the reports. */
static void one_winner(seen_t* seen, const char* winner_value, int state,
                       const char* value) {
  int computed = 0, matching = 0, fresh = 0;
  for (int i = 0; i < WORKERS; i++) {
    cr_assert_eq(seen[i].rc, MCR_OK, "worker %d: %s", i,
                 mcr_err_name(seen[i].rc));
    if (seen[i].computed) {
      computed++;
      cr_assert_eq(seen[i].fill_rc, MCR_OK, "fill: %d", seen[i].fill_rc);
      cr_assert_str_eq(seen[i].value, winner_value ? winner_value : "",
                       "the value the winner was given");
    } else if (seen[i].state == state && !strcmp(seen[i].value, value)) {
      matching++;
    } else if (seen[i].state == MCR_LEASE_HIT &&
               !strcmp(seen[i].value, "new")) {
      fresh++;
    }
  }
  cr_assert_eq(computed, 1, "%d workers computed, want exactly 1", computed);
  cr_assert_eq(matching + fresh, WORKERS - 1,
               "%d got the first value, %d the new one, of %d", matching, fresh,
               WORKERS - 1);
  cl_expect(client, "hot", "new");
  munmap(seen, sizeof(seen_t) * WORKERS);
}

Test(lease, stampede_on_a_miss_computes_once) {
  mcr_lease_opts_t lo;
  mcr_lease_opts_init(&lo);
  lo.wait_ms = 20000; /* far above COMPUTE_MS: waiting never runs out */
  /* Everyone else waited for the winner's value: a hit on "new". */
  one_winner(stampede("hot", &lo), NULL, MCR_LEASE_HIT, "new");
}

Test(lease, stampede_on_an_invalidated_key_serves_the_stale_value) {
  cl_set(client, "hot", "old");
  cr_assert_eq(mcr_client_lease_invalidate(client, K("hot"), 30), MCR_OK);
  mcr_lease_opts_t lo;
  mcr_lease_opts_init(&lo);
  /* Nobody waited: each got the stale value or, after the fill, the new
   * one. */
  one_winner(stampede("hot", &lo), "old", MCR_LEASE_STALE, "old");
}

Test(lease, stampede_before_expiry_recaches_once) {
  cr_assert_eq(mcr_client_set(client, K("hot"), "old", 3, 0, 30, 0), MCR_OK);
  mcr_lease_opts_t lo;
  mcr_lease_opts_init(&lo);
  lo.recache_ttl = 60; /* 30 s left is below it, and outlasts the stampede */
  one_winner(stampede("hot", &lo), "old", MCR_LEASE_HIT, "old");
}

Test(lease, a_dead_winner_holds_the_key_only_for_its_lease) {
  mcr_lease_opts_t lo;
  mcr_lease_opts_init(&lo);
  lo.lease_ttl = 4; /* memcached counts whole seconds: held >= 3 s */
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    mcr_client_t* c = child_client();
    mcr_lease_t l;
    int rc = c ? mcr_client_lease_get(c, K("hot"), &lo, &l) : -1;
    _exit(rc == MCR_OK && l.state == MCR_LEASE_WON ? 0 : 1); /* no fill */
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child did not win");

  /* The waiting bound: no value comes, so the wait ends in BUSY. */
  mcr_lease_t l;
  lo.wait_ms = 100;
  cr_assert_eq(mcr_client_lease_get(client, K("hot"), &lo, &l), MCR_OK);
  cr_assert_eq(l.state, MCR_LEASE_BUSY);
  cr_assert_eq(l.has_value, 0);

  /* Once the placeholder expires, the next caller wins. */
  lo.wait_ms = 0;
  int busy = 0;
  for (int i = 0; i < 300; i++) {
    cr_assert_eq(mcr_client_lease_get(client, K("hot"), &lo, &l), MCR_OK);
    if (l.state != MCR_LEASE_BUSY)
      break;
    busy++;
    sleep_ms(100);
  }
  cr_assert_eq(l.state, MCR_LEASE_WON, "state %d after %d busy reads", l.state,
               busy);
  cr_assert_eq(mcr_client_lease_fill(client, K("hot"), "v", 1, 0, 0, &l),
               MCR_OK);
  cl_expect(client, "hot", "v");
}

Test(lease, a_fill_loses_to_a_newer_value) {
  mcr_lease_t l;
  cr_assert_eq(mcr_client_lease_get(client, K("k"), NULL, &l), MCR_OK);
  cr_assert_eq(l.state, MCR_LEASE_WON);
  cr_assert_eq(l.has_value, 0);
  cl_set(client, "k", "newer");
  cr_assert_eq(mcr_client_lease_fill(client, K("k"), "mine", 4, 0, 0, &l),
               MCR_EXISTS);
  cl_expect(client, "k", "newer");
}

Test(lease, a_fill_after_the_lease_expired_adds) {
  mcr_lease_opts_t lo;
  mcr_lease_opts_init(&lo);
  lo.lease_ttl = 1;
  mcr_lease_t l;
  cr_assert_eq(mcr_client_lease_get(client, K("k"), &lo, &l), MCR_OK);
  cr_assert_eq(l.state, MCR_LEASE_WON);
  /* Wait until the placeholder is gone (memcached counts whole seconds). */
  mcr_item_t item;
  int rc = MCR_OK;
  for (int i = 0; i < 100 && rc == MCR_OK; i++) {
    sleep_ms(50);
    rc = mcr_client_get(client, K("k"), &item);
  }
  cr_assert_eq(rc, MCR_MISS);
  cr_assert_eq(mcr_client_lease_fill(client, K("k"), "mine", 4, 9, 0, &l),
               MCR_OK);
  cl_expect(client, "k", "mine");
  /* The same again after another process stored the key: nothing stored. */
  mcr_lease_t stale_lease = l;
  cr_assert_eq(mcr_client_delete(client, K("k"), 0), MCR_OK);
  cl_set(client, "k", "theirs");
  stale_lease.cas = 0;
  cr_assert_eq(
      mcr_client_lease_fill(client, K("k"), "mine", 4, 0, 0, &stale_lease),
      MCR_NOT_STORED);
  cl_expect(client, "k", "theirs");
}

Test(lease, hit_returns_value_and_flags) {
  cr_assert_eq(mcr_client_set(client, K("k"), "abc", 3, 0, 0, 0), MCR_OK);
  mcr_lease_t l;
  cr_assert_eq(mcr_client_lease_get(client, K("k"), NULL, &l), MCR_OK);
  cr_assert_eq(l.state, MCR_LEASE_HIT);
  cr_assert_eq(l.has_value, 1);
  cr_assert_eq(l.stale, 0);
  cr_assert_eq(l.value_len, 3);
  cr_assert(memcmp(l.value, "abc", 3) == 0);
  /* A won lease's fill stores the flags given. */
  mcr_lease_t w;
  cr_assert_eq(mcr_client_lease_get(client, K("k2"), NULL, &w), MCR_OK);
  cr_assert_eq(w.state, MCR_LEASE_WON);
  cr_assert_eq(mcr_client_lease_fill(client, K("k2"), "x", 1, 42, 0, &w),
               MCR_OK);
  cr_assert_eq(mcr_client_lease_get(client, K("k2"), NULL, &l), MCR_OK);
  cr_assert_eq(l.state, MCR_LEASE_HIT);
  cr_assert_eq(l.client_flags, 42);
}

Test(lease, bad_arguments_send_nothing) {
  mcr_lease_opts_t lo;
  mcr_lease_opts_init(&lo);
  mcr_lease_t l;
  uint64_t before = mcd_stat(&mcd, "cmd_get");
  cr_assert_eq(mcr_client_lease_get(NULL, K("k"), &lo, &l), MCR_EINVAL);
  cr_assert_eq(mcr_client_lease_get(client, K("k"), &lo, NULL), MCR_EINVAL);
  lo.lease_ttl = 0;
  cr_assert_eq(mcr_client_lease_get(client, K("k"), &lo, &l), MCR_ERANGE);
  cr_assert(strstr(mcr_client_last_error(client), "lease_ttl"));
  lo.lease_ttl = 2147483648LL;
  cr_assert_eq(mcr_client_lease_get(client, K("k"), &lo, &l), MCR_ERANGE);
  mcr_lease_opts_init(&lo);
  lo.recache_ttl = -1;
  cr_assert_eq(mcr_client_lease_get(client, K("k"), &lo, &l), MCR_ERANGE);
  mcr_lease_opts_init(&lo);
  lo.poll_ms = 0;
  cr_assert_eq(mcr_client_lease_get(client, K("k"), &lo, &l), MCR_EINVAL);
  cr_assert_eq(mcr_client_lease_get(client, K("bad key"), NULL, &l), MCR_EKEY);
  cr_assert_eq(mcr_client_lease_get(client, "", 0, NULL, &l), MCR_EKEY);
  cr_assert_eq(mcd_stat(&mcd, "cmd_get"), before, "a bad call sent an mg");

  cr_assert_eq(mcr_client_lease_fill(client, K("k"), NULL, 1, 0, 0, &l),
               MCR_EINVAL);
  cr_assert_eq(mcr_client_lease_fill(client, K("k"), "v", 1, 0, 0, NULL),
               MCR_EINVAL);
  cr_assert_eq(mcr_client_lease_fill(client, K("k"), "", 0, 0, 0, &l),
               MCR_EINVAL);
  cr_assert(strstr(mcr_client_last_error(client), "placeholder"));
  cr_assert_eq(mcd_stat(&mcd, "cmd_set"), 0, "a bad fill sent an ms");
  cr_assert_eq(mcr_client_lease_invalidate(client, K("k"), 0), MCR_ERANGE);
  cr_assert_eq(mcr_client_lease_invalidate(NULL, K("k"), 5), MCR_EINVAL);
  cr_assert_eq(mcr_client_lease_invalidate(client, K("missing"), 5),
               MCR_NOT_FOUND);
}

Test(lease, a_dead_server_is_an_error_or_under_ignore_errors_a_win) {
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.servers = mcd.servers;
  o.connect_timeout_ms = 300;
  o.io_timeout_ms = 300;
  mcr_client_t* c = client_new(mcd.servers, &o);
  o.ignore_errors = 1;
  mcr_client_t* soft = client_new(mcd.servers, &o);
  mcd_stop(&mcd);
  mcr_lease_t l;
  int rc = mcr_client_lease_get(c, K("k"), NULL, &l);
  cr_assert_lt(rc, 0, "rc %d", rc);
  cr_assert_eq(mcr_client_lease_get(soft, K("k"), NULL, &l), MCR_OK);
  cr_assert_eq(l.state, MCR_LEASE_WON);
  cr_assert_eq(l.cas, 0);
  mcr_client_free(c);
  mcr_client_free(soft);
}
