/* test_agent.c — the built mcring-agent, end to end.
 *
 * Each test runs the real binary ($MCR_TOP_BUILDDIR/mcring-agent) against
 * the fake ElastiCache endpoint (support/fakecfg.c) or a static list, DNS
 * name or node file, in its own mkdtemp directory and on its own ports, and
 * reads what it published with the library's snapshot reader — exactly
 * what a worker sees. Nothing waits for a fixed time: "eventually" checks
 * poll with a generous deadline, and "nothing changed" checks wait until
 * the fake endpoint has counted several more polls. Agents run with
 * --interval 0.05 and a short --max-backoff so that recovery is quick.
 * The soak at the end also starts real memcached: a ring_dir client in the
 * test process follows the agent through 300 generations while the test
 * counts what both processes hold.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fakecfg.h"
#include "mcring.h"
#include "support.h"

#define DEADLINE_MS 8000

typedef struct {
  char dir[64];   /* the test's private directory */
  char ring[96];  /* ring directory inside it */
  char log[96];   /* agent stderr */
  char nodes[96]; /* node file for fakecfg or --file */
  char conf[96];  /* config file (empty unless a test writes it) */
  fakecfg_t* fake;
} tenv_t;

static void tenv_init(tenv_t* t) {
  memset(t, 0, sizeof(*t));
  snprintf(t->dir, sizeof(t->dir), "/tmp/mcr-agent-XXXXXX");
  cr_assert(mkdtemp(t->dir), "mkdtemp: %s", strerror(errno));
  snprintf(t->ring, sizeof(t->ring), "%s/ring", t->dir);
  snprintf(t->log, sizeof(t->log), "%s/agent.log", t->dir);
  snprintf(t->nodes, sizeof(t->nodes), "%s/nodes", t->dir);
  snprintf(t->conf, sizeof(t->conf), "%s/agent.conf", t->dir);
  cr_assert_eq(fakecfg_write_file(t->conf, ""), 0);
}

static void tenv_fini(tenv_t* t) {
  fakecfg_stop(t->fake);
  t->fake = NULL;
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
  if (system(cmd) != 0) { /* leftovers in /tmp are harmless */
  }
}

/* Starts the fake endpoint on the node file with `text`. */
static void fake_up(tenv_t* t, fakecfg_mode_t mode, const char* text) {
  cr_assert_eq(fakecfg_write_file(t->nodes, text), 0);
  fakecfg_opts_t o = {.mode = mode, .nodes_file = t->nodes};
  t->fake = fakecfg_start(&o);
  cr_assert(t->fake, "fakecfg_start failed");
}

/* Spawns the agent with the NULL-terminated extra arguments after
 * "--config <conf> --ring-dir <ring>" unless `bare`. stderr goes to the
 * log file (appended). */
static pid_t spawn_v(tenv_t* t, bool bare, const char* const* args) {
  const char* const common[] = {"--config", t->conf, "--ring-dir", t->ring,
                                NULL};
  spawn_opts_t o = {.err = t->log, .err_append = true};
  return agent_spawn(&o, bare ? NULL : common, args);
}

#define SPAWN(t, ...) \
  spawn_v((t), false, (const char* const[]){__VA_ARGS__, NULL})

#define RUN(t, ...) wait_exit(SPAWN((t), __VA_ARGS__), DEADLINE_MS)

/* SIGTERM and expect a clean exit 0. */
static void stop_agent(pid_t pid) {
  int rc = deploy_stop(pid, SIGTERM, DEADLINE_MS);
  cr_assert_eq(rc, 0, "agent exit status %d after SIGTERM", rc);
}

/* Waits until the generation is >= want; returns it (fails on timeout). */
static uint64_t wait_gen(tenv_t* t, uint64_t want) {
  return ring_wait_gen(t->ring, want, DEADLINE_MS);
}

/* The ring's nodes as "host=address:port*weight" joined by spaces, in ring
 * order, plus the mode. */
static void ring_desc(const char* ring, char* out, size_t cap,
                      mcr_distribution_t* mode, size_t* count) {
  mcr_snapshot_t* s;
  char err[256];
  int rc = mcr_snapshot_open(&s, ring, NULL, err, sizeof(err));
  cr_assert_eq(rc, 0, "snapshot open: %s", err);
  const mcr_ring_t* r = mcr_snapshot_ring(s);
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < mcr_ring_node_count(r); i++) {
    mcr_ring_node_t n;
    cr_assert_eq(mcr_ring_node(r, i, &n), 0);
    len += (size_t)snprintf(out + len, cap - len, "%s%s=%s:%u*%u", i ? " " : "",
                            n.host, n.address, n.port, n.weight);
    if (len >= cap)
      len = cap - 1;
  }
  if (mode)
    *mode = mcr_ring_distribution(r);
  if (count)
    *count = mcr_ring_node_count(r);
  mcr_snapshot_free(s);
}

/* Writes `text` to the node file, waits for the agent to publish it as
 * generation `gen`, and describes that ring into d[cap] (ring_desc).
 * Returns its node count. */
static size_t relist(tenv_t* t, const char* text, uint64_t gen, char* d,
                     size_t cap) {
  cr_assert_eq(fakecfg_write_file(t->nodes, text), 0);
  cr_assert_eq(wait_gen(t, gen), gen);
  size_t n;
  ring_desc(t->ring, d, cap, NULL, &n);
  return n;
}

/* Requests of kind a, plus kind b unless NULL, that the fake endpoint has
 * counted. */
static int requests(tenv_t* t, const char* a, const char* b) {
  return fakecfg_requests(t->fake, a) + (b ? fakecfg_requests(t->fake, b) : 0);
}

/* Waits until the fake endpoint has counted `more` further requests of
 * kind a or b (see requests). */
static void wait_requests(tenv_t* t, const char* a, const char* b, int more) {
  int base = requests(t, a, b);
  int64_t end = now_ms() + DEADLINE_MS;
  while (requests(t, a, b) < base + more) {
    if (now_ms() > end)
      cr_assert_fail("the agent stopped polling");
    usleep(5000);
  }
}

/* Waits for `more` further config polls (either form). */
static void wait_polls(tenv_t* t, int more) {
  wait_requests(t, "config", "get", more);
}

/* Waits for `more` further version requests (every poll starts with one,
 * including polls that hang or fail later). */
static void wait_version_polls(tenv_t* t, int more) {
  wait_requests(t, "version", NULL, more);
}

/* Waits until the file at path contains `needle`. */
static void wait_text(const char* path, const char* needle) {
  int64_t end = now_ms() + DEADLINE_MS;
  while (!strstr(deploy_slurp(path), needle)) {
    if (now_ms() > end)
      cr_assert_fail("%s never showed \"%s\":\n%s", path, needle,
                     deploy_slurp(path));
    usleep(10000);
  }
}

/* Waits until the ring directory's status file contains `needle`. */
static void wait_status(tenv_t* t, const char* needle) {
  char path[160];
  snprintf(path, sizeof(path), "%s/status", t->ring);
  wait_text(path, needle);
}

static size_t count_in(const char* hay, const char* needle) {
  size_t n = 0;
  for (const char* p = hay; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

#define FAST "--interval", "0.05", "--max-backoff", "0.1", "--io-timeout", "0.5"

static const char* const three =
    "a.test|127.0.0.1|11211\nb.test|127.0.0.2|11211\nc.test|127.0.0.3|11211\n";

/* tenv_init, then the fake endpoint serving `three` nodes. Returns its
 * endpoint, valid while it runs. */
static const char* tenv_up(tenv_t* t) {
  tenv_init(t);
  fake_up(t, FAKECFG_NORMAL, three);
  return fakecfg_endpoint(t->fake);
}

/* One run of the agent with --once on the endpoint ep: it must exit 0
 * having published generation 1. */
static void publish_first(tenv_t* t, const char* ep) {
  cr_assert_eq(RUN(t, "--elasticache", ep, "--once"), 0, "%s",
               deploy_slurp(t->log));
  cr_assert_eq(deploy_ring_gen(t->ring), 1);
}

/* Stops the fake endpoint: the agent's polls fail to connect. */
static void fake_down(tenv_t* t) {
  fakecfg_stop(t->fake);
  t->fake = NULL;
}

/* Starts the fake endpoint again on its old `port`, now serving z.test
 * only, and waits for the agent to publish that as generation 2. */
static void fake_back(tenv_t* t, int port) {
  cr_assert_eq(fakecfg_write_file(t->nodes, "z.test|127.0.0.26|11211\n"), 0);
  fakecfg_opts_t o = {.nodes_file = t->nodes, .port = port};
  t->fake = fakecfg_start(&o);
  cr_assert(t->fake, "port %d was taken meanwhile", port);
  cr_assert_eq(wait_gen(t, 2), 2);
}

TestSuite(agent, .timeout = 60);

Test(agent, elasticache_publishes_and_follows_changes) {
  tenv_t t;
  const char* ep = tenv_up(&t);
  pid_t pid = SPAWN(&t, "--elasticache", ep, FAST);
  cr_assert_eq(wait_gen(&t, 1), 1);
  char d[4096];
  size_t n;
  mcr_distribution_t mode;
  ring_desc(t.ring, d, sizeof(d), &mode, &n);
  cr_assert_eq(n, 3);
  cr_assert_eq(mode, MCR_DIST_KETAMA);
  cr_assert_str_eq(d,
                   "a.test=127.0.0.1:11211*1 b.test=127.0.0.2:11211*1 "
                   "c.test=127.0.0.3:11211*1");
  wait_status(&t, "outcome ok");
  wait_status(&t, "config_version 1\n");

  /* Unchanged list: many polls, no new generation. */
  wait_polls(&t, 5);
  cr_assert_eq(deploy_ring_gen(t.ring), 1);

  /* Add a node. */
  n = relist(&t,
             "a.test|127.0.0.1|11211\nb.test|127.0.0.2|11211\n"
             "c.test|127.0.0.3|11211\nd.test|127.0.0.4|11211\n",
             2, d, sizeof(d));
  cr_assert_eq(n, 4);
  wait_status(&t, "config_version 2\n");

  /* Remove two. */
  relist(&t, "a.test|127.0.0.1|11211\nd.test|127.0.0.4|11211\n", 3, d,
         sizeof(d));
  cr_assert_str_eq(d, "a.test=127.0.0.1:11211*1 d.test=127.0.0.4:11211*1");

  /* Replace in place: same version, new address for d.test. */
  fakecfg_freeze_version(t.fake, true);
  uint64_t v = fakecfg_version(t.fake);
  relist(&t, "a.test|127.0.0.1|11211\nd.test|127.0.0.9|11211\n", 4, d,
         sizeof(d));
  cr_assert_str_eq(d, "a.test=127.0.0.1:11211*1 d.test=127.0.0.9:11211*1");
  cr_assert_eq(fakecfg_version(t.fake), v);

  /* A version going backwards is warned about once, not per poll. */
  fakecfg_set_version(t.fake, 1);
  wait_polls(&t, 6);
  cr_assert_eq(deploy_ring_gen(t.ring), 4);
  stop_agent(pid);
  cr_assert_eq(count_in(deploy_slurp(t.log), "went backwards"), 1, "%s",
               deploy_slurp(t.log));
  cr_assert_eq(count_in(deploy_slurp(t.log), "replaced in place"), 1);
  /* SIGTERM left the last ring in place. */
  cr_assert_eq(deploy_ring_gen(t.ring), 4);
  tenv_fini(&t);
}

/* Starts an agent on a healthy endpoint, waits for generation 1, switches
 * the endpoint to `bad`, changes the node list, and checks that the ring
 * stays at generation 1 across several polls; then heals the endpoint and
 * expects the new list. */
static void keeps_last_ring(fakecfg_mode_t bad, int count_delta,
                            const char* status_word) {
  tenv_t t;
  tenv_init(&t);
  cr_assert_eq(fakecfg_write_file(t.nodes, three), 0);
  fakecfg_opts_t o = {.nodes_file = t.nodes, .count_delta = count_delta};
  t.fake = fakecfg_start(&o);
  cr_assert(t.fake);
  pid_t pid = SPAWN(&t, "--elasticache", fakecfg_endpoint(t.fake), FAST,
                    "--io-timeout", "0.2");
  wait_gen(&t, 1);
  fakecfg_set_mode(t.fake, bad);
  fakecfg_write_file(t.nodes, "a.test|127.0.0.1|11211\n");
  wait_version_polls(&t, 4);
  cr_assert_eq(deploy_ring_gen(t.ring), 1, "a failed poll published");
  char d[4096];
  size_t n;
  ring_desc(t.ring, d, sizeof(d), NULL, &n);
  cr_assert_eq(n, 3);
  wait_status(&t, "outcome error");
  wait_status(&t, status_word);
  fakecfg_set_mode(t.fake, FAKECFG_NORMAL);
  cr_assert_eq(wait_gen(&t, 2), 2);
  ring_desc(t.ring, d, sizeof(d), NULL, &n);
  cr_assert_eq(n, 1);
  wait_status(&t, "outcome ok");
  stop_agent(pid);
  /* Logged once per change of state: one error line, one recovery. */
  const char* log = deploy_slurp(t.log);
  cr_assert_eq(count_in(log, "keeping the last ring"), 1, "%s", log);
  cr_assert_eq(count_in(log, "recovered"), 1, "%s", log);
  tenv_fini(&t);
}

Test(agent, hang_keeps_last_ring) {
  keeps_last_ring(FAKECFG_HANG, 0, "ETIMEOUT");
}
Test(agent, close_mid_reply_keeps_last_ring) {
  keeps_last_ring(FAKECFG_CLOSE_MID, 0, "mid-reply");
}
Test(agent, byte_count_too_big_keeps_last_ring) {
  keeps_last_ring(FAKECFG_BAD_COUNT, 5, "byte count");
}
Test(agent, byte_count_too_small_keeps_last_ring) {
  keeps_last_ring(FAKECFG_BAD_COUNT, -4, "byte count");
}
Test(agent, malformed_nodes_keep_last_ring) {
  keeps_last_ring(FAKECFG_MALFORMED, 0, "bad port");
}

Test(agent, endpoint_down_keeps_last_ring_and_recovers) {
  tenv_t t;
  char ep[32]; /* outlives the endpoint */
  snprintf(ep, sizeof(ep), "%s", tenv_up(&t));
  int port = fakecfg_port(t.fake);
  pid_t pid = SPAWN(&t, "--elasticache", ep, FAST);
  wait_gen(&t, 1);
  fake_down(&t);
  wait_status(&t, "ECONNECT");
  cr_assert_eq(deploy_ring_gen(t.ring), 1);
  /* Back on the same port with another list. */
  fake_back(&t, port);
  stop_agent(pid);
  tenv_fini(&t);
}

Test(agent, source_down_at_start_keeps_existing_snapshot) {
  tenv_t t;
  char ep[32], pidfile[128]; /* ep outlives the endpoint */
  snprintf(ep, sizeof(ep), "%s", tenv_up(&t));
  int port = fakecfg_port(t.fake);
  snprintf(pidfile, sizeof(pidfile), "%s/agent.pid", t.dir);
  publish_first(&t, ep);
  fake_down(&t);
  pid_t pid = SPAWN(&t, "--elasticache", ep, FAST, "--wait-first", "--pidfile",
                    pidfile);
  wait_status(&t, "failures 3");
  cr_assert_eq(deploy_ring_gen(t.ring), 1, "the existing ring must stay");
  cr_assert_neq(access(pidfile, F_OK), 0, "--wait-first: no pidfile yet");
  fake_back(&t, port);
  int64_t end = now_ms() + DEADLINE_MS;
  while (access(pidfile, F_OK) != 0 && now_ms() < end)
    usleep(10000);
  cr_assert_eq(atol(deploy_slurp(pidfile)), (long)pid);
  stop_agent(pid);
  tenv_fini(&t);
}

/* --once against an endpoint in `mode`: a ring must come out, after
 * `configs` config requests and one legacy get. */
static void legacy_fallback(fakecfg_mode_t mode, int configs) {
  tenv_t t;
  tenv_init(&t);
  fake_up(&t, mode, three);
  cr_assert_eq(RUN(&t, "--elasticache", fakecfg_endpoint(t.fake), "--once"), 0,
               "%s", deploy_slurp(t.log));
  cr_assert_eq(deploy_ring_gen(t.ring), 1);
  cr_assert_eq(fakecfg_requests(t.fake, "config"), configs);
  cr_assert_eq(fakecfg_requests(t.fake, "get"), 1);
  wait_status(&t, "legacy get");
  tenv_fini(&t);
}

/* VERSION 1.4.5: config get cluster is never sent. */
Test(agent, old_engine_uses_legacy_get) {
  legacy_fallback(FAKECFG_LEGACY_ONLY, 0);
}

/* VERSION 1.6.21 but ERROR to config: one try, then the legacy get. */
Test(agent, config_error_falls_back_to_legacy_get) {
  legacy_fallback(FAKECFG_ERROR_CONFIG, 1);
}

Test(agent, five_hundred_nodes) {
  tenv_t t;
  tenv_init(&t);
  fake_up(&t, FAKECFG_NORMAL, "x|127.0.0.1|1\n");
  cr_assert_eq(fakecfg_write_nodes(t.nodes, 500, 20000), 0);
  cr_assert_eq(RUN(&t, "--elasticache", fakecfg_endpoint(t.fake), "--once",
                   "--distribution", "ketama-libmemcached"),
               0, "%s", deploy_slurp(t.log));
  static char d[65536];
  size_t n;
  mcr_distribution_t mode;
  ring_desc(t.ring, d, sizeof(d), &mode, &n);
  cr_assert_eq(n, 500);
  cr_assert_eq(mode, MCR_DIST_KETAMA_LIBMEMCACHED);
  /* That mode hashes the names; the node table keeps them. */
  cr_assert(strstr(d, "node499.test="), "%.200s", d);
  cr_assert(strstr(d, ":20499*1"), "%.200s", d);
  tenv_fini(&t);
}

Test(agent, once_exit_codes_leave_snapshot_untouched) {
  tenv_t t;
  const char* ep = tenv_up(&t);
  publish_first(&t, ep);
  char ring1[160];
  snprintf(ring1, sizeof(ring1), "%s/ring.1", t.ring);
  struct stat before, after;
  cr_assert_eq(stat(ring1, &before), 0);

  fakecfg_set_mode(t.fake, FAKECFG_MALFORMED);
  cr_assert_eq(RUN(&t, "--elasticache", ep, "--once"), 1);
  cr_assert(strstr(deploy_slurp(t.log), "bad port"), "%s", deploy_slurp(t.log));
  cr_assert(strstr(deploy_slurp(t.log), "left unchanged"));

  fakecfg_set_mode(t.fake, FAKECFG_BAD_COUNT);
  cr_assert_eq(RUN(&t, "--elasticache", ep, "--once"), 1);
  fakecfg_set_mode(t.fake, FAKECFG_CLOSE_MID);
  cr_assert_eq(RUN(&t, "--elasticache", ep, "--once"), 1);
  fakecfg_set_mode(t.fake, FAKECFG_HANG);
  cr_assert_eq(RUN(&t, "--elasticache", ep, "--once", "--io-timeout", "0.2"),
               1);
  cr_assert(strstr(deploy_slurp(t.log), "timed out"));

  cr_assert_eq(deploy_ring_gen(t.ring), 1);
  cr_assert_eq(stat(ring1, &after), 0);
  cr_assert_eq(before.st_ino, after.st_ino);
  cr_assert_eq(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
  /* Usage errors are their own status. */
  cr_assert_eq(RUN(&t, "--once"), 2);
  cr_assert_eq(RUN(&t, "--elasticache", ep, "--servers", "1.2.3.4:1"), 2);
  cr_assert_eq(RUN(&t, "--elasticache", ep, "--interval", "soon"), 2);
  tenv_fini(&t);
}

Test(agent, restart_continues_generations) {
  tenv_t t;
  const char* ep = tenv_up(&t);
  publish_first(&t, ep);
  pid_t pid = SPAWN(&t, "--elasticache", ep, FAST);
  cr_assert_eq(wait_gen(&t, 2), 2);
  stop_agent(pid);
  cr_assert_eq(deploy_ring_gen(t.ring), 2);
  pid = SPAWN(&t, "--elasticache", ep, FAST);
  cr_assert_eq(wait_gen(&t, 3), 3);
  /* A killed agent leaves a readable ring too; the next one carries on. */
  kill(pid, SIGKILL);
  wait_exit(pid, DEADLINE_MS);
  cr_assert_eq(deploy_ring_gen(t.ring), 3);
  cr_assert_eq(RUN(&t, "--elasticache", ep, "--once"), 0);
  cr_assert_eq(deploy_ring_gen(t.ring), 4);
  tenv_fini(&t);
}

Test(agent, second_agent_on_same_dir_refused) {
  tenv_t t;
  const char* ep = tenv_up(&t);
  pid_t pid = SPAWN(&t, "--elasticache", ep, FAST);
  wait_gen(&t, 1);
  cr_assert_eq(RUN(&t, "--elasticache", ep, "--once"), 3);
  cr_assert_eq(RUN(&t, "--elasticache", ep), 3);
  cr_assert(strstr(deploy_slurp(t.log), "lock"), "%s", deploy_slurp(t.log));
  stop_agent(pid);
  tenv_fini(&t);
}

Test(agent, world_writable_ring_dir_refused) {
  tenv_t t;
  tenv_init(&t);
  cr_assert_eq(mkdir(t.ring, 0700), 0);
  cr_assert_eq(chmod(t.ring, 0777), 0);
  cr_assert_eq(RUN(&t, "--servers", "127.0.0.1:11211", "--once"), 3);
  cr_assert(strstr(deploy_slurp(t.log), "world-writable"), "%s",
            deploy_slurp(t.log));
  struct stat st;
  cr_assert_eq(stat(t.ring, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0777, "the agent changed the mode");
  tenv_fini(&t);
}

Test(agent, ring_dir_created_0750) {
  tenv_t t;
  tenv_init(&t);
  cr_assert_eq(RUN(&t, "--servers", "127.0.0.1:11211", "--once"), 0);
  struct stat st;
  cr_assert_eq(stat(t.ring, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0750, "mode %o", st.st_mode & 07777);
  char status[160];
  snprintf(status, sizeof(status), "%s/status", t.ring);
  cr_assert_eq(stat(status, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0640);
  tenv_fini(&t);
}

Test(agent, group_option_sets_group_and_setgid) {
  tenv_t t;
  tenv_init(&t);
  struct group* gr = getgrgid(getegid());
  cr_assert(gr);
  cr_assert_eq(
      RUN(&t, "--servers", "127.0.0.1:11211", "--once", "--group", gr->gr_name),
      0, "%s", deploy_slurp(t.log));
  struct stat st;
  cr_assert_eq(stat(t.ring, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 02750);
  cr_assert_eq(st.st_gid, getegid());
  cr_assert_eq(RUN(&t, "--servers", "127.0.0.1:11211", "--once", "--group",
                   "no-such-group-mcr"),
               3);
  tenv_fini(&t);
}

Test(agent, static_source) {
  tenv_t t;
  tenv_init(&t);
  cr_assert_eq(
      RUN(&t, "--servers", "127.0.0.2:11212:2,127.0.0.1:11211", "--once"), 0,
      "%s", deploy_slurp(t.log));
  char d[512];
  ring_desc(t.ring, d, sizeof(d), NULL, NULL);
  cr_assert_str_eq(d,
                   "127.0.0.1=127.0.0.1:11211*1 127.0.0.2=127.0.0.2:11212*2");
  wait_status(&t, "source static 127.0.0.2:11212:2,127.0.0.1:11211");
  wait_status(&t, "config_version none");
  cr_assert_eq(RUN(&t, "--servers", "127.0.0.1:99999", "--once"), 1);
  cr_assert_eq(deploy_ring_gen(t.ring), 1);
  tenv_fini(&t);
}

Test(agent, dns_source) {
  tenv_t t;
  tenv_init(&t);
  cr_assert_eq(RUN(&t, "--dns", "localhost:11400", "--once"), 0, "%s",
               deploy_slurp(t.log));
  char d[512];
  size_t n;
  ring_desc(t.ring, d, sizeof(d), NULL, &n);
  cr_assert_geq(n, 1);
  cr_assert(strstr(d, ":11400*1"), "%s", d);
  tenv_fini(&t);
}

Test(agent, file_source_follows_the_file) {
  tenv_t t;
  tenv_init(&t);
  cr_assert_eq(fakecfg_write_file(t.nodes,
                                  "# two nodes\n127.0.0.1:11211\n"
                                  "127.0.0.2:11211:2\n"),
               0);
  pid_t pid = SPAWN(&t, "--file", t.nodes, FAST);
  cr_assert_eq(wait_gen(&t, 1), 1);
  char d[512];
  relist(&t, "127.0.0.1:11211\n127.0.0.2:11211:2\n[::1]:11300\n", 2, d,
         sizeof(d));
  /* (The ring may spell the address in full: 0:0:0:0:0:0:0:1.) */
  cr_assert(strstr(d, "::1=") && strstr(d, ":11300*1"), "%s", d);
  /* A broken file keeps the ring; fixing it publishes. */
  fakecfg_write_file(t.nodes, "127.0.0.1:11211\nnot a node\n");
  wait_status(&t, "line 2");
  cr_assert_eq(deploy_ring_gen(t.ring), 2);
  fakecfg_write_file(t.nodes, "127.0.0.3:11211\n");
  cr_assert_eq(wait_gen(&t, 3), 3);
  stop_agent(pid);
  tenv_fini(&t);
}

Test(agent, sighup_rereads_config_file) {
  tenv_t t;
  tenv_init(&t);
  cr_assert_eq(fakecfg_write_file(t.conf,
                                  "# agent settings\n"
                                  "servers = 127.0.0.1:11211\n"
                                  "interval = 0.05\n"),
               0);
  pid_t pid = SPAWN(&t, "--log-level", "debug");
  cr_assert_eq(wait_gen(&t, 1), 1);
  cr_assert_eq(fakecfg_write_file(t.conf,
                                  "servers = 127.0.0.1:11211, 127.0.0.2:11211"
                                  "\ninterval = 0.05\n"
                                  "distribution = ketama-libmemcached\n"),
               0);
  kill(pid, SIGHUP);
  cr_assert_eq(wait_gen(&t, 2), 2);
  size_t n;
  mcr_distribution_t mode;
  char d[512];
  ring_desc(t.ring, d, sizeof(d), &mode, &n);
  cr_assert_eq(n, 2);
  cr_assert_eq(mode, MCR_DIST_KETAMA_LIBMEMCACHED);
  /* A broken file on reload keeps the running settings. */
  cr_assert_eq(fakecfg_write_file(t.conf, "servers 127.0.0.9\n"), 0);
  kill(pid, SIGHUP);
  wait_text(t.log, "keeping the current settings");
  cr_assert_eq(deploy_ring_gen(t.ring), 2);
  stop_agent(pid);
  tenv_fini(&t);
}

Test(agent, flags_override_config_file) {
  tenv_t t;
  tenv_init(&t);
  cr_assert_eq(fakecfg_write_file(t.conf,
                                  "servers = 127.0.0.5:11211\n"
                                  "distribution = xxh3\n"),
               0);
  cr_assert_eq(RUN(&t, "--once", "--distribution", "ketama"), 0, "%s",
               deploy_slurp(t.log));
  char d[512];
  mcr_distribution_t mode;
  ring_desc(t.ring, d, sizeof(d), &mode, NULL);
  cr_assert_eq(mode, MCR_DIST_KETAMA);
  cr_assert_str_eq(d, "127.0.0.5=127.0.0.5:11211*1");
  cr_assert_eq(fakecfg_write_file(t.conf, "bogus = 1\n"), 0);
  cr_assert_eq(RUN(&t, "--once", "--servers", "127.0.0.1"), 2);
  cr_assert(strstr(deploy_slurp(t.log), "agent.conf:1"), "%s",
            deploy_slurp(t.log));
  tenv_fini(&t);
}

Test(agent, daemon_wait_first_pidfile) {
  tenv_t t;
  const char* ep = tenv_up(&t);
  char pidfile[128];
  snprintf(pidfile, sizeof(pidfile), "%s/agent.pid", t.dir);
  cr_assert_eq(RUN(&t, "--elasticache", ep, FAST, "--daemon", "--wait-first",
                   "--pidfile", pidfile),
               0, "%s", deploy_slurp(t.log));
  /* Start-up returned only once the first ring was there. */
  cr_assert_geq(deploy_ring_gen(t.ring), 1);
  long pid = atol(deploy_slurp(pidfile));
  cr_assert_gt(pid, 1);
  cr_assert_eq(kill((pid_t)pid, 0), 0);
  kill((pid_t)pid, SIGTERM);
  int64_t end = now_ms() + DEADLINE_MS;
  while (kill((pid_t)pid, 0) == 0 && now_ms() < end)
    usleep(10000);
  cr_assert_neq(kill((pid_t)pid, 0), 0, "daemon did not exit");
  cr_assert_neq(access(pidfile, F_OK), 0, "pidfile left behind");
  cr_assert_geq(deploy_ring_gen(t.ring), 1);
  tenv_fini(&t);
}

/* Resident memory of pid in KiB (VmRSS), or -1. */
static long rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE* f = fopen(path, "r");
  long kib = -1;
  while (f && fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  if (f)
    fclose(f);
  return kib;
}

/* A reply listing 380,000 nodes (3.6 MB, under the 4 MiB reply limit) is
 * refused as soon as the count passes 65,535, the last ring stays, and the
 * agent gives the memory back: its resident size stays small. */
Test(agent, huge_node_list_refused_and_memory_returned) {
  tenv_t t;
  const char* ep = tenv_up(&t);
  pid_t pid = SPAWN(&t, "--elasticache", ep, FAST, "--io-timeout", "5");
  cr_assert_eq(wait_gen(&t, 1), 1);
  enum { N = 380000 };
  size_t cap = (size_t)N * 12 + 1;
  char* text = malloc(cap);
  size_t len = 0;
  for (int i = 0; i < N; i++)
    len += (size_t)snprintf(text + len, cap - len, "h%x||1\n", (unsigned)i);
  cr_assert_eq(fakecfg_write_file(t.nodes, text), 0);
  free(text);
  wait_text(t.log, "more than 65535 nodes");
  wait_version_polls(&t, 3); /* a few more refused polls */
  long kib = rss_kib(pid);
  cr_log_info("agent RSS after refused polls: %ld KiB", kib);
  cr_expect_gt(kib, 0);
#if defined(__SANITIZE_ADDRESS__)
  /* ASan's allocator keeps freed memory in quarantine: nothing to see. */
  cr_log_info("AddressSanitizer build: the resident size is not checked");
#else
  cr_expect_lt(kib, 24 * 1024, "the agent kept %ld KiB", kib);
#endif
  cr_expect_eq(deploy_ring_gen(t.ring), 1, "the last ring was not kept");
  stop_agent(pid);
  tenv_fini(&t);
}

/* A control file holding the last generation (2^64 - 1: only damage gets
 * there) does not make the agent publish "generation 0", which readers
 * take for "nothing published": numbering starts again at 1, and a reader
 * that saw the damaged word follows, since any change is a new ring. */
Test(agent, generation_counter_never_wraps_to_zero) {
  tenv_t t;
  const char* ep = tenv_up(&t);
  publish_first(&t, ep);
  mcr_snapshot_t* s;
  char err[256];
  cr_assert_eq(mcr_snapshot_open(&s, t.ring, NULL, err, sizeof(err)), 0, "%s",
               err);
  char ctl[160];
  snprintf(ctl, sizeof(ctl), "%s/ctl", t.ring);
  int fd = open(ctl, O_WRONLY);
  cr_assert_geq(fd, 0);
  uint64_t last = UINT64_MAX;
  cr_assert_eq(pwrite(fd, &last, 8, 16), 8);
  close(fd);
  cr_assert_lt(mcr_snapshot_refresh(s), 0, "a missing ring.2^64-1 loaded");
  cr_assert_eq(mcr_ring_node_count(mcr_snapshot_ring(s)), 3);
  cr_assert_eq(fakecfg_write_file(t.nodes, "a.test|127.0.0.1|11211\n"), 0);
  cr_assert_eq(RUN(&t, "--elasticache", ep, "--once"), 0, "%s",
               deploy_slurp(t.log));
  cr_assert(strstr(deploy_slurp(t.log), "starts again at 1"), "%s",
            deploy_slurp(t.log));
  cr_assert_eq(deploy_ring_gen(t.ring), 1);
  cr_assert_eq(mcr_snapshot_refresh(s), 1, "%s", mcr_snapshot_last_error(s));
  cr_assert_eq(mcr_snapshot_generation(s), 1);
  cr_assert_eq(mcr_ring_node_count(mcr_snapshot_ring(s)), 1);
  mcr_snapshot_free(s);
  tenv_fini(&t);
}

/* The number of descriptors process pid holds on a deleted file whose
 * path contains `name`. */
static int deleted_fds(pid_t pid, const char* name) {
  char dir[64];
  snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
  int count = 0;
  for (int fd = 0; fd < 1024; fd++) {
    char path[96], target[512];
    snprintf(path, sizeof(path), "%s/%d", dir, fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0)
      continue;
    target[n] = '\0';
    if (strstr(target, name) && strstr(target, "(deleted)"))
      count++;
  }
  return count;
}

/* A replaced ring file stays open in the agent for a while (so freeing its
 * pages is the agent's cost, not the last worker's), then is closed: the
 * agent never piles them up. */
Test(agent, replaced_ring_held_then_dropped) {
  tenv_t t;
  tenv_init(&t);
  cr_assert_eq(fakecfg_write_file(t.nodes, "127.0.0.1:11211\n"), 0);
  pid_t pid = SPAWN(&t, "--file", t.nodes, FAST);
  cr_assert_eq(wait_gen(&t, 1), 1);
  cr_assert_eq(deleted_fds(pid, "/ring.1"), 0);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  fakecfg_write_file(t.nodes, "127.0.0.2:11211\n");
  cr_assert_eq(wait_gen(&t, 2), 2);
  int held = deleted_fds(pid, "/ring.1");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  /* Held for 2 s after the publication: checked only when this test got
   * here well within that (a descheduled test proves nothing). */
  if (t1.tv_sec - t0.tv_sec < 1)
    cr_assert_eq(held, 1, "ring.1 not held after its replacement");
  fakecfg_write_file(t.nodes, "127.0.0.3:11211\n");
  cr_assert_eq(wait_gen(&t, 3), 3);
  /* At most the one file the last publication replaced. */
  cr_assert_eq(deleted_fds(pid, "/ring.1"), 0);
  cr_assert_leq(deleted_fds(pid, "/ring."), 1);
  /* Eventually none, while the agent keeps polling. */
  int64_t end = now_ms() + DEADLINE_MS;
  while (deleted_fds(pid, "/ring.") > 0 && now_ms() < end)
    usleep(20000);
  cr_assert_eq(deleted_fds(pid, "/ring."), 0, "ring.2 never dropped");
  stop_agent(pid);
  tenv_fini(&t);
}

/* ------------------------------------------------ soak */

/* Entries of /proc/<pid>/fd (pid 0: this process; the count then includes
 * the descriptor that reads it). */
static int fd_count(pid_t pid) {
  char path[64];
  if (pid)
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
  else
    snprintf(path, sizeof(path), "/proc/self/fd");
  DIR* d = opendir(path);
  cr_assert_not_null(d, "%s: %s", path, strerror(errno));
  int n = 0;
  for (struct dirent* e; (e = readdir(d)) != NULL;)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* What process pid (0: this one) holds, for a failure message: the
 * target of each /proc/PID/fd entry, one per line. Returns buf. */
static const char* fd_list(pid_t pid, char* buf, size_t cap) {
  char dir[64];
  snprintf(dir, sizeof(dir), pid ? "/proc/%d/fd" : "/proc/self/fd", (int)pid);
  size_t len = 0;
  buf[0] = '\0';
  DIR* d = opendir(dir);
  for (struct dirent* e; d && (e = readdir(d)) != NULL;) {
    char path[320], target[256];
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (e->d_name[0] == '.' || n <= 0 || len + 1 >= cap)
      continue;
    target[n] = '\0';
    len +=
        (size_t)snprintf(buf + len, cap - len, "%s -> %s\n", e->d_name, target);
    if (len >= cap)
      len = cap - 1;
  }
  if (d)
    closedir(d);
  return buf;
}

/* Lines of this process's /proc/self/maps that map a file in dir. */
static int maps_in(const char* dir) {
  char needle[128], line[512];
  snprintf(needle, sizeof(needle), " %s/", dir);
  FILE* f = fopen("/proc/self/maps", "r");
  cr_assert_not_null(f);
  int n = 0;
  while (fgets(line, sizeof(line), f))
    n += strstr(line, needle) != NULL;
  fclose(f);
  return n;
}

/* This process's sockets connected to 127.0.0.1:port. */
static int socks_to(int port) {
  DIR* d = opendir("/proc/self/fd");
  cr_assert_not_null(d);
  int n = 0;
  for (struct dirent* e; (e = readdir(d)) != NULL;) {
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    if (e->d_name[0] != '.' &&
        getpeername(atoi(e->d_name), (struct sockaddr*)&sa, &len) == 0 &&
        sa.sin_family == AF_INET && ntohs(sa.sin_port) == port &&
        sa.sin_addr.s_addr == htonl(INADDR_LOOPBACK))
      n++;
  }
  closedir(d);
  return n;
}

#define SOAK_NODES 3
#define SOAK_KEYS 64

/* Lists the first n of m in the node file, m[0] with weight w0. */
static void soak_write(tenv_t* t, const mcd_t* m, int n, int w0) {
  char text[SOAK_NODES * 40] = "";
  size_t len = 0;
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(text + len, sizeof(text) - len, "127.0.0.1:%d:%d\n",
                            m[i].port, i ? 1 : w0);
  cr_assert_eq(fakecfg_write_file(t->nodes, text), 0);
}

/* soak_write, then waits for the agent to publish it as generation gen. */
static void soak_list(tenv_t* t, const mcd_t* m, int n, int w0, uint64_t gen) {
  soak_write(t, m, n, w0);
  cr_assert_eq(wait_gen(t, gen), gen);
}

/* One call that reaches every node of c's ring (a multi-get of
 * SOAK_KEYS keys): it also makes c switch to the newest generation. Every
 * key is a hit or a miss, never an error. */
static void soak_traffic(mcr_client_t* c) {
  char kb[SOAK_KEYS][16];
  const char* keys[SOAK_KEYS];
  size_t lens[SOAK_KEYS];
  for (int i = 0; i < SOAK_KEYS; i++) {
    lens[i] = (size_t)snprintf(kb[i], sizeof(kb[i]), "soak%d", i);
    keys[i] = kb[i];
  }
  mcr_item_t items[SOAK_KEYS];
  cr_assert_eq(mcr_client_get_multi(c, SOAK_KEYS, keys, lens, items, NULL), 0);
  for (int i = 0; i < SOAK_KEYS; i++)
    cr_assert(items[i].status == MCR_OK || items[i].status == MCR_MISS,
              "%s: %s", keys[i], mcr_err_name(items[i].status));
}

/* Descriptors a worker may hold beyond its first count: a registration
 * with the agent's host stats (socket and segment) that timed out at the
 * first switch on a loaded machine and was made at a later one. */
#define SOAK_FD_SLACK 2
/* And the agent: a count taken while it publishes or writes its status
 * file (which it does at every poll) holds the file being written, the
 * ring file its last publication replaced (held for a while: publish.c),
 * the node file being read. A leak of one per generation passes this
 * within a few switches. */
#define SOAK_AGENT_FD_SLACK 3

/* What the worker (this process) and the agent hold: the counts after the
 * first switch, and the most seen since. */
typedef struct {
  pid_t agent;
  const char* ring;
  int fds, maps, agent_fds;
  long agent_kib;
  int max_fds, max_maps, max_agent_fds;
  long max_agent_kib;
} soak_t;

/* Takes the first counts. */
static void soak_base(soak_t* s, pid_t agent, const char* ring) {
  s->agent = agent;
  s->ring = ring;
  s->fds = s->max_fds = fd_count(0);
  s->maps = s->max_maps = maps_in(ring);
  s->agent_fds = s->max_agent_fds = fd_count(agent);
  s->agent_kib = s->max_agent_kib = rss_kib(agent);
  cr_assert_geq(s->maps, 1, "no ring file mapped from %s", ring);
}

/* Checks the counts now against the first ones, at step `what` k. The
 * worker holds `fewer` descriptors less than at first (the sockets of a
 * node that left). */
static void soak_check(soak_t* s, const char* what, int k, int fewer) {
  static char list[8192];
  int f = fd_count(0), mp = maps_in(s->ring), af = fd_count(s->agent);
  long kib = rss_kib(s->agent);
  s->max_fds = f > s->max_fds ? f : s->max_fds;
  s->max_maps = mp > s->max_maps ? mp : s->max_maps;
  s->max_agent_fds = af > s->max_agent_fds ? af : s->max_agent_fds;
  s->max_agent_kib = kib > s->max_agent_kib ? kib : s->max_agent_kib;
  cr_assert_leq(f, s->fds - fewer + SOAK_FD_SLACK,
                "%s %d: the worker holds %d descriptors, %d at first%s:\n%s",
                what, k, f, s->fds, fewer ? " with the node" : "",
                fd_list(0, list, sizeof(list)));
  cr_assert_leq(mp, s->maps, "%s %d: %d mappings of ring files, %d at first",
                what, k, mp, s->maps);
  cr_assert_leq(af, s->agent_fds + SOAK_AGENT_FD_SLACK,
                "%s %d: the agent holds %d descriptors, %d at first:\n%s", what,
                k, af, s->agent_fds, fd_list(s->agent, list, sizeof(list)));
}

/* What a long soak showed (issue 19), kept by a short one: a worker that
 * follows the agent through hundreds of generations, and through a node
 * that leaves and comes back 50 times, holds no more descriptors and maps
 * no more ring files than after its first switch, and its sockets to a
 * node that left are closed; the agent's descriptors and resident size
 * stay where they were after the first switch too. Counts are compared,
 * never times. */
Test(agent, resources_stay_flat_over_many_generations, .timeout = 240) {
  enum { SWITCHES = 200, CHURN = 50, LAST = SOAK_NODES - 1 };
  tenv_t t;
  tenv_init(&t);
  mcd_t m[SOAK_NODES];
  for (int i = 0; i < SOAK_NODES; i++)
    mcd_start(&m[i], NULL);
  uint64_t gen = 1;
  soak_write(&t, m, SOAK_NODES, 1);
  pid_t pid = SPAWN(&t, "--file", t.nodes, "--interval", "0.02",
                    "--max-backoff", "0.1");
  cr_assert_eq(wait_gen(&t, gen), gen);
  mcr_client_opts_t o = opts_default();
  o.ring_dir = t.ring;
  mcr_client_t* c = client_new(NULL, &o);
  soak_traffic(c);

  /* The first switch sets the baselines. */
  soak_list(&t, m, SOAK_NODES, 2, ++gen);
  soak_traffic(c);
  cr_assert_eq(mcr_client_generation(c), gen);
  for (int i = 0; i < SOAK_NODES; i++)
    cr_assert_eq(socks_to(m[i].port), 1, "node %d: %d sockets", i,
                 socks_to(m[i].port));
  soak_t s;
  soak_base(&s, pid, t.ring);

  /* Every node stays; m[0]'s weight changes, so each is a new ring. */
  for (int k = 1; k <= SWITCHES; k++) {
    soak_list(&t, m, SOAK_NODES, k % 2 ? 1 : 2, ++gen);
    soak_traffic(c);
    cr_assert_eq(mcr_client_generation(c), gen);
    soak_check(&s, "switch", k, 0);
  }

  /* The last node leaves and comes back: its socket goes with it. */
  for (int k = 1; k <= CHURN; k++) {
    soak_list(&t, m, LAST, 1, ++gen);
    soak_traffic(c);
    cr_assert_eq(mcr_client_generation(c), gen);
    cr_assert_eq(socks_to(m[LAST].port), 0,
                 "round %d: a socket to the node that left stayed open", k);
    soak_check(&s, "removal", k, 1);
    soak_list(&t, m, SOAK_NODES, 1, ++gen);
    soak_traffic(c);
    cr_assert_eq(mcr_client_generation(c), gen);
    cr_assert_eq(socks_to(m[LAST].port), 1,
                 "round %d: the node that came back has %d sockets", k,
                 socks_to(m[LAST].port));
    soak_check(&s, "return", k, 0);
  }
  /* One ring file in the directory (two while a publication replaces
   * one). */
  cr_assert_leq(dir_count_prefix(t.ring, "ring."), 2);

  cr_log_info(
      "%llu generations: worker %d..%d descriptors, %d..%d ring "
      "mappings; agent %d..%d descriptors, %ld..%ld KiB resident",
      (unsigned long long)gen, s.fds, s.max_fds, s.maps, s.max_maps,
      s.agent_fds, s.max_agent_fds, s.agent_kib, s.max_agent_kib);
#if defined(__SANITIZE_ADDRESS__)
  /* ASan's allocator keeps freed memory in quarantine: nothing to see. */
  cr_log_info("AddressSanitizer build: the resident size is not checked");
#else
  cr_assert_leq(s.max_agent_kib, s.agent_kib + 16 * 1024,
                "the agent grew from %ld to %ld KiB", s.agent_kib,
                s.max_agent_kib);
#endif
  mcr_client_free(c);
  stop_agent(pid);
  for (int i = 0; i < SOAK_NODES; i++)
    mcd_stop(&m[i]);
  tenv_fini(&t);
}
