/* test_discovery.c — the embedded discovery: a client that polls an
 * ElastiCache configuration endpoint itself (opts.elasticache), no agent.
 *
 * Real memcached nodes behind the tests' fake configuration endpoint
 * (tests/support/fakecfg.c, the exact Auto Discovery wire format): the
 * client starts on the endpoint's list, follows a node added and a node
 * removed (keys placed exactly as a client given the same servers places
 * them, connections to kept nodes kept), keeps its last ring when the
 * endpoint is down or answers a reply the agent would refuse, polls at
 * most once per interval, fails to start without a usable endpoint, and
 * counts the processes of its user polling the same endpoint.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakecfg.h"
#include "support.h"

#define KEYS 300

typedef struct {
  mcd_t m[3];
  char dir[64], file[96];
  fakecfg_t* f;
} cluster_t;

/* Writes the endpoint's node file: the first n of the nodes, by address. */
static void serve(cluster_t* k, int n) {
  char text[512] = "";
  for (int i = 0; i < n; i++) {
    char line[96];
    snprintf(line, sizeof line, "127.0.0.1|127.0.0.1|%d\n", k->m[i].port);
    strcat(text, line);
  }
  cr_assert_eq(fakecfg_write_file(k->file, text), 0);
}

static void up(cluster_t* k, int nodes, int served) {
  for (int i = 0; i < nodes; i++)
    mcd_start(&k->m[i], NULL);
  snprintf(k->dir, sizeof k->dir, "/tmp/mcring-disc-XXXXXX");
  cr_assert(mkdtemp(k->dir), "mkdtemp: %s", strerror(errno));
  snprintf(k->file, sizeof k->file, "%s/nodes", k->dir);
  serve(k, served);
  fakecfg_opts_t fo = {.nodes_file = k->file};
  cr_assert((k->f = fakecfg_start(&fo)));
}

static void down(cluster_t* k) {
  fakecfg_stop(k->f);
  for (int i = 0; i < 3; i++)
    mcd_stop(&k->m[i]);
  unlink(k->file);
  rmdir(k->dir);
}

static mcr_client_t* ec_client(cluster_t* k, int interval_ms) {
  mcr_client_opts_t o = opts_default();
  o.elasticache = fakecfg_endpoint(k->f);
  o.discovery_interval_ms = interval_ms;
  mcr_client_t* c = NULL;
  char err[256] = "";
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  cr_assert_eq(rc, 0, "mcr_client_new: %s", err);
  return c;
}

/* Asserts that c places every test key on the node a client given the
 * same servers (in another order) names. */
static void same_placement(mcr_client_t* c, cluster_t* k, int n) {
  char servers[256] = "";
  for (int i = n - 1; i >= 0; i--) {
    strcat(servers, k->m[i].servers);
    if (i)
      strcat(servers, ",");
  }
  mcr_client_t* ref = client_new(servers, NULL);
  cr_assert_eq(mcr_client_node_count(c), (size_t)n);
  for (int i = 0; i < KEYS; i++) {
    char key[32];
    snprintf(key, sizeof key, "disc:%d", i);
    size_t a = mcr_ring_locate(mcr_client_ring(c), key, strlen(key));
    size_t b = mcr_ring_locate(mcr_client_ring(ref), key, strlen(key));
    cr_assert_str_eq(mcr_client_node_name(c, a), mcr_client_node_name(ref, b),
                     "key %s", key);
  }
  mcr_client_free(ref);
}

static void set_all(mcr_client_t* c) {
  for (int i = 0; i < KEYS; i++) {
    char key[32];
    snprintf(key, sizeof key, "disc:%d", i);
    cl_set(c, key, key);
  }
}

/* Reads every key; returns how many hit (with the right value). */
static int hits(mcr_client_t* c) {
  int n = 0;
  for (int i = 0; i < KEYS; i++) {
    char key[32];
    snprintf(key, sizeof key, "disc:%d", i);
    mcr_item_t v;
    if (mcr_client_get(c, key, strlen(key), &v) == MCR_OK) {
      cr_assert_eq(v.value_len, strlen(key));
      cr_assert_eq(memcmp(v.value, key, v.value_len), 0);
      n++;
    }
  }
  return n;
}

Test(discovery, follows_a_node_added_then_removed, .timeout = 60) {
  cluster_t k = {0};
  up(&k, 3, 2);
  mcr_client_t* c = ec_client(&k, 50);
  same_placement(c, &k, 2);
  set_all(c);
  cr_assert_eq(hits(c), KEYS);
  cr_assert_eq(cl_stats(c).ring_switches, 0);

  serve(&k, 3);
  usleep(120 * 1000);
  cr_assert_eq(hits(c) < KEYS, true, "a third node took no key");
  mcr_client_stats_t s = cl_stats(c);
  cr_assert_eq(s.ring_switches, 1);
  cr_assert_eq(s.ring_errors, 0);
  same_placement(c, &k, 3);
  /* The two kept nodes kept their connections: 2 in all before the
   * switch, one more for the new node. */
  cr_assert_eq(s.reconnects, 0);

  /* Every key only where the three-node ring puts it. */
  cr_assert_eq(mcr_client_flush_all(c, 0, 0), MCR_OK);
  set_all(c);
  serve(&k, 2);
  usleep(120 * 1000);
  int h = hits(c);
  cr_assert(h > 0 && h < KEYS, "%d hits after the third node left", h);
  cr_assert_eq(cl_stats(c).ring_switches, 2);
  same_placement(c, &k, 2);
  cr_assert(cl_stats(c).discovery_polls >= 3);
  mcr_client_free(c);
  down(&k);
}

/* The endpoint fails in one way; the client keeps serving its last ring
 * and counts the failed poll. */
static void keeps_ring(fakecfg_mode_t mode, bool stop) {
  cluster_t k = {0};
  up(&k, 2, 2);
  mcr_client_t* c = ec_client(&k, 50);
  set_all(c);
  if (stop) {
    fakecfg_stop(k.f);
    k.f = NULL;
  } else {
    fakecfg_set_mode(k.f, mode);
    serve(&k, 1); /* what the endpoint would list, were it heard */
  }
  usleep(120 * 1000);
  cr_assert_eq(hits(c), KEYS);
  mcr_client_stats_t s = cl_stats(c);
  cr_assert(s.ring_errors >= 1, "no failed poll counted");
  cr_assert_eq(s.ring_switches, 0);
  cr_assert_eq(mcr_client_node_count(c), 2);
  mcr_client_free(c);
  down(&k);
}

Test(discovery, endpoint_gone_keeps_the_ring, .timeout = 60) {
  keeps_ring(FAKECFG_NORMAL, true);
}

Test(discovery, malformed_reply_keeps_the_ring, .timeout = 60) {
  keeps_ring(FAKECFG_MALFORMED, false);
}

Test(discovery, bad_byte_count_keeps_the_ring, .timeout = 60) {
  keeps_ring(FAKECFG_BAD_COUNT, false);
}

Test(discovery, hung_endpoint_costs_one_bounded_wait, .timeout = 60) {
  cluster_t k = {0};
  up(&k, 2, 2);
  mcr_client_opts_t o = opts_default();
  o.elasticache = fakecfg_endpoint(k.f);
  o.discovery_interval_ms = 50;
  o.io_timeout_ms = 200;
  mcr_client_t* c = NULL;
  cr_assert_eq(mcr_client_new(&c, &o, NULL, 0), 0);
  set_all(c);
  fakecfg_set_mode(k.f, FAKECFG_HANG);
  usleep(80 * 1000);
  /* One call waits for the hung endpoint (within its timeouts), the
   * others until the next interval do not poll at all. */
  int64_t t0 = now_ms();
  cr_assert_eq(hits(c), KEYS);
  int64_t took = now_ms() - t0;
  cr_assert(took < 200 + 1000 + TEST_SLACK_MS, "%lld ms", (long long)took);
  cr_assert(cl_stats(c).ring_errors >= 1);
  mcr_client_free(c);
  down(&k);
}

Test(discovery, polls_at_most_once_per_interval, .timeout = 60) {
  cluster_t k = {0};
  up(&k, 2, 2);
  mcr_client_t* c = ec_client(&k, 600000);
  set_all(c);
  cr_assert_eq(hits(c), KEYS);
  cr_assert_eq(fakecfg_requests(k.f, "config"), 1);
  cr_assert_eq(cl_stats(c).discovery_polls, 1);
  mcr_client_free(c);
  down(&k);
}

Test(discovery, new_fails_without_an_endpoint, .timeout = 30) {
  cluster_t k = {0};
  up(&k, 1, 1);
  mcr_client_opts_t o = opts_default();
  char ep[64];
  snprintf(ep, sizeof ep, "%s", fakecfg_endpoint(k.f));
  fakecfg_stop(k.f);
  k.f = NULL;
  o.elasticache = ep;
  mcr_client_t* c = NULL;
  char err[256] = "";
  int rc = mcr_client_new(&c, &o, err, sizeof err);
  cr_assert_lt(rc, 0);
  cr_assert_null(c);
  cr_assert(strstr(err, ep), "error \"%s\" does not name the endpoint", err);
  down(&k);
}

Test(discovery, malformed_first_reply_fails_new, .timeout = 30) {
  cluster_t k = {0};
  up(&k, 1, 1);
  fakecfg_set_mode(k.f, FAKECFG_MALFORMED);
  mcr_client_opts_t o = opts_default();
  o.elasticache = fakecfg_endpoint(k.f);
  mcr_client_t* c = NULL;
  char err[256] = "";
  cr_assert_eq(mcr_client_new(&c, &o, err, sizeof err), MCR_EPROTO, "%s", err);
  down(&k);
}

Test(discovery, options_are_checked) {
  mcr_client_opts_t o = opts_default();
  mcr_client_t* c = NULL;
  char err[256] = "";
  o.elasticache = "127.0.0.1:1";
  o.servers = "127.0.0.1:2";
  cr_assert_eq(mcr_client_new(&c, &o, err, sizeof err), MCR_EINVAL);
  cr_assert(strstr(err, "one of servers, ring_dir and elasticache"), "%s", err);
  o.servers = NULL;
  o.ring_dir = "/nonexistent";
  cr_assert_eq(mcr_client_new(&c, &o, err, sizeof err), MCR_EINVAL);
  o.ring_dir = NULL;
  o.discovery_interval_ms = 0;
  cr_assert_eq(mcr_client_new(&c, &o, err, sizeof err), MCR_EINVAL);
  cr_assert(strstr(err, "discovery_interval_ms"), "%s", err);
}

/* Six processes poll the endpoint and stay; a seventh sees seven. */
Test(discovery, counts_the_processes_polling_one_endpoint, .timeout = 60) {
  cluster_t k = {0};
  up(&k, 1, 1);
  enum { KIDS = 6 };
  int ready[2], hold[2];
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(hold), 0);
  pid_t kids[KIDS];
  for (int i = 0; i < KIDS; i++) {
    kids[i] = fork();
    cr_assert_geq(kids[i], 0);
    if (kids[i] == 0) {
      close(ready[0]);
      close(hold[1]);
      mcr_client_opts_t o = opts_default();
      o.elasticache = fakecfg_endpoint(k.f);
      mcr_client_t* c = NULL;
      char b = mcr_client_new(&c, &o, NULL, 0) == 0 ? 'y' : 'n';
      if (write(ready[1], &b, 1) != 1)
        _exit(1);
      (void)!read(hold[0], &b, 1); /* until the parent closes it */
      mcr_client_free(c);
      _exit(0);
    }
  }
  close(ready[1]);
  close(hold[0]);
  for (int i = 0; i < KIDS; i++) {
    char b = 0;
    cr_assert_eq(read(ready[0], &b, 1), 1);
    cr_assert_eq(b, 'y');
  }
  mcr_client_t* c = ec_client(&k, 60000);
  cr_assert_eq(cl_stats(c).discovery_peers, KIDS + 1);
  close(hold[1]);
  for (int i = 0; i < KIDS; i++)
    waitpid(kids[i], NULL, 0);
  mcr_client_free(c);
  /* The six are gone: a new process (this one, re-polling) counts one. */
  c = ec_client(&k, 60000);
  cr_assert_eq(cl_stats(c).discovery_peers, 1);
  mcr_client_free(c);
  close(ready[0]);
  down(&k);
}
