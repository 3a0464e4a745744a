/* test_cli.c — the built `mcring` tool, end to end.
 *
 * Every test runs the real binary ($MCR_TOP_BUILDDIR/mcring) as a child
 * process against a memcached the test starts itself (support.h's
 * fixture), and checks what scripts depend on: the bytes on stdout, the
 * exit status (0 hit or success, 1 miss / not stored / exists / not found,
 * 2 error) and that an error is exactly one line on stderr. What the tool
 * stored is read back with raw connections that bypass libmcring. `watch`
 * runs against rings published by the built mcring-agent (--once) in a
 * private directory. Output goes to files rather than pipes, so a chatty
 * child can never block on a full pipe.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakecfg.h"
#include "mcring.h"
#include "ring.h"
#include "support.h"

#define DEADLINE_MS 10000

TestSuite(cli, .init = fx_setup, .fini = fx_teardown, .timeout = 60);
TestSuite(cli_nosrv, .timeout = 60);

typedef struct {
  char cmd[512]; /* the arguments, for failure messages */
  int rc;        /* exit status, -1 when killed by a signal */
  char out[70000];
  size_t out_len;
  char err[8192];
} run_t;

/* A scratch file name under /tmp, unique per process and call. */
static void tmpname(char* buf, size_t len, const char* what) {
  static int n;
  snprintf(buf, len, "/tmp/mcr-cli-%d-%d-%s", (int)getpid(), n++, what);
}

/* Starts `mcring ARGS...` with stdin from the file `inf` (NULL:
 * /dev/null) and stdout / stderr into files. MCRING_SERVERS is cleared so
 * only the arguments count. */
static pid_t spawn_tool(const char* inf, const char* outf, const char* errf,
                        const char* const* args) {
  if (!inf)
    inf = "/dev/null";
  const char* argv[64];
  size_t n = 0;
  argv[n++] = built_prog("mcring");
  for (size_t i = 0; args[i] && n < 63; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return spawn_prog(argv, &(spawn_opts_t){.in = inf,
                                          .out = outf,
                                          .err = errf,
                                          .unset = (const char* const[]){
                                              "MCRING_SERVERS", NULL}});
}

static void run_v(run_t* r, const void* in, size_t in_len,
                  const char* const* args) {
  size_t len = 0;
  r->cmd[0] = '\0';
  for (size_t i = 0; args[i] && len < sizeof r->cmd; i++)
    len +=
        (size_t)snprintf(r->cmd + len, sizeof r->cmd - len, " %.64s", args[i]);
  char inf[128], outf[128], errf[128];
  tmpname(inf, sizeof inf, "in");
  tmpname(outf, sizeof outf, "out");
  tmpname(errf, sizeof errf, "err");
  int fd = open(inf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert_geq(fd, 0);
  if (in_len)
    cr_assert_eq(write(fd, in, in_len), (ssize_t)in_len);
  close(fd);
  pid_t pid = spawn_tool(inf, outf, errf, args);
  r->rc = wait_exit(pid, DEADLINE_MS);
  unlink(inf);
  r->out_len = deploy_slurp_into(outf, r->out, sizeof r->out);
  deploy_slurp_into(errf, r->err, sizeof r->err);
  unlink(outf);
  unlink(errf);
}

#define RUN(r, ...) \
  run_v((r), NULL, 0, (const char* const[]){__VA_ARGS__, NULL})
#define RUN_IN(r, in, len, ...) \
  run_v((r), (in), (len), (const char* const[]){__VA_ARGS__, NULL})
#define SRV fx_mcd.servers

/* Exit status `rc`, stdout exactly `out` (NULL: not checked), stderr
 * empty. */
static void expect_ok(const run_t* r, int rc, const char* out) {
  cr_assert_eq(r->rc, rc, "mcring%s: exit %d want %d; stderr: %s", r->cmd,
               r->rc, rc, r->err);
  if (out)
    cr_assert_str_eq(r->out, out, "mcring%s: stdout %s want %s", r->cmd, r->out,
                     out);
  if (rc == 0)
    cr_assert_str_empty(r->err, "mcring%s: unexpected stderr: %s", r->cmd,
                        r->err);
}

/* Exit status `rc`, exactly one line on stderr starting "mcring: " and
 * containing `needle`. */
static void expect_err(const run_t* r, int rc, const char* needle) {
  cr_assert_eq(r->rc, rc, "mcring%s: exit %d want %d; stderr: %s", r->cmd,
               r->rc, rc, r->err);
  cr_assert(strncmp(r->err, "mcring: ", 8) == 0, "mcring%s: stderr: %s", r->cmd,
            r->err);
  const char* nl = strchr(r->err, '\n');
  cr_assert(nl && nl[1] == '\0', "mcring%s: not one line on stderr: %s", r->cmd,
            r->err);
  cr_assert(strstr(r->err, needle), "mcring%s: stderr lacks \"%s\": %s", r->cmd,
            needle, r->err);
}

/* One run of the tool and what it must give: exit status rc and then,
 * with `err` unset, stdout exactly `out` (NULL: not checked) as expect_ok
 * checks it, or with `err` set, one stderr line holding err as expect_err
 * checks it. `in` (NUL-terminated, may be NULL) is its stdin. */
typedef struct {
  const char* args[8]; /* NULL-terminated */
  int rc;
  const char* out;
  const char* err;
  const char* in;
} step_t;

/* Runs the steps in order, each with "-s servers" ahead of its arguments
 * unless servers is NULL. */
static void run_steps(const char* servers, const step_t* steps, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char* args[12];
    size_t k = 0;
    if (servers) {
      args[k++] = "-s";
      args[k++] = servers;
    }
    for (size_t j = 0; j < 8 && steps[i].args[j]; j++)
      args[k++] = steps[i].args[j];
    args[k] = NULL;
    const char* in = steps[i].in;
    run_t r;
    run_v(&r, in, in ? strlen(in) : 0, args);
    if (steps[i].err)
      expect_err(&r, steps[i].rc, steps[i].err);
    else
      expect_ok(&r, steps[i].rc, steps[i].out);
  }
}

#define RUN_STEPS(servers, steps) \
  run_steps((servers), (steps), sizeof(steps) / sizeof(steps)[0])

/* ---------------------------------------------------------------- help */

static const char* const all_commands[] = {
    "get",     "gets",   "set",  "add",   "replace", "append", "prepend",
    "cas",     "delete", "incr", "decr",  "touch",   "stats",  "flush_all",
    "version", "locate", "ring", "watch", "stat"};

Test(cli_nosrv, help_lists_every_command) {
  run_t r;
  RUN(&r, "--help");
  expect_ok(&r, 0, NULL);
  cr_assert(strstr(r.out, "usage: mcring"));
  for (size_t i = 0; i < sizeof all_commands / sizeof *all_commands; i++) {
    char needle[32];
    snprintf(needle, sizeof needle, "\n  %s ", all_commands[i]);
    cr_assert(strstr(r.out, needle), "--help lacks %s", all_commands[i]);
  }
  cr_assert(strstr(r.out, "Exit status"));
}

Test(cli_nosrv, command_help_for_each) {
  for (size_t i = 0; i < sizeof all_commands / sizeof *all_commands; i++) {
    char want[64];
    snprintf(want, sizeof want, "usage: mcring %s", all_commands[i]);
    run_t r;
    /* Both orders: options permute around the command. */
    RUN(&r, all_commands[i], "--help");
    expect_ok(&r, 0, NULL);
    cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s --help: %s",
              all_commands[i], r.out);
    cr_assert(strstr(r.out, "Exit:"), "%s --help lacks exit statuses",
              all_commands[i]);
    RUN(&r, "-h", all_commands[i]);
    expect_ok(&r, 0, NULL);
    cr_assert(strncmp(r.out, want, strlen(want)) == 0);
  }
}

Test(cli_nosrv, no_command_is_usage_error) {
  run_t r;
  RUN(&r, "-s", "127.0.0.1:1");
  cr_assert_eq(r.rc, 2);
  cr_assert_str_empty(r.out);
  cr_assert(strstr(r.err, "usage: mcring"));
}

Test(cli_nosrv, bad_usage_is_one_line) {
  const step_t steps[] = {
      {{"frobnicate"}, 2, .err = "unknown command"},
      {{"get", "--bogus", "k"}, 2, .err = "bad option --bogus"},
      {{"get", "-s"}, 2, .err = "needs an argument"},
      {{"get", "-d", "modulo", "k"}, 2, .err = "unknown distribution"},
      {{"set", "k", "v", "--flags", "4294967296"}, 2, .err = "--flags"},
      {{"set", "k", "v", "--flags", "-1"}, 2, .err = "--flags"},
      {{"set", "k", "v", "--ttl", "12x"}, 2, .err = "--ttl"},
      {{"get", "k", "--timeout", "0"}, 2, .err = "timeouts"},
      {{"get", "k", "-s", "127.0.0.1:1", "-r", "/tmp"},
       2,
       .err = "one of --servers"},
      {{"get", "-s", "127.0.0.1:99999", "k"}, 2, .err = "invalid server list"},
      {{"get"}, 2, .err = "usage: mcring get"},
      {{"set", "k"}, 2, .err = "usage: mcring set"},
      {{"cas", "k", "v"}, 2, .err = "usage: mcring cas"},
      {{"touch", "k"}, 2, .err = "usage: mcring touch"},
      {{"version", "extra"}, 2, .err = "usage: mcring version"},
  };
  RUN_STEPS(NULL, steps);
}

Test(cli_nosrv, server_down_is_error) {
  refuser_t ref;
  refuser_start(&ref);
  const step_t steps[] = {
      {{"get", "k"}, 2, .err = "connection refused"},
      {{"set", "k", "v"}, 2, .err = "connection refused"},
      {{"version"}, 2, .err = "connection refused"},
  };
  RUN_STEPS(ref.servers, steps);
  refuser_stop(&ref);
}

/* ---------------------------------------------------------------- get/set */

Test(cli, set_get_roundtrip_raw) {
  run_t r;
  RUN(&r, "-s", SRV, "set", "k1", "hello world");
  expect_ok(&r, 0, "");
  RUN(&r, "-s", SRV, "get", "k1");
  expect_ok(&r, 0, "hello world"); /* raw bytes, no newline */
  /* Options after the command (GNU permutation). */
  RUN(&r, "get", "k1", "--servers", SRV);
  expect_ok(&r, 0, "hello world");
}

Test(cli, set_from_stdin_is_binary_safe) {
  char value[3000];
  for (size_t i = 0; i < sizeof value; i++)
    value[i] = (char)(i * 7);
  run_t r;
  RUN_IN(&r, value, sizeof value, "-s", SRV, "set", "bin", "-");
  expect_ok(&r, 0, "");
  RUN(&r, "-s", SRV, "get", "bin");
  expect_ok(&r, 0, NULL);
  cr_assert_eq(r.out_len, sizeof value);
  cr_assert(memcmp(r.out, value, sizeof value) == 0);
}

Test(cli, set_flags_and_ttl_reach_the_server) {
  run_t r;
  RUN(&r, "-s", SRV, "set", "f", "v", "--flags", "7", "--ttl", "600");
  expect_ok(&r, 0, "");
  char buf[8];
  size_t len;
  uint32_t flags;
  cr_assert(raw_get(&fx_mcd, "f", buf, sizeof buf, &len, &flags));
  cr_assert_eq(flags, 7);
  int64_t ttl = raw_ttl(&fx_mcd, "f");
  cr_assert(ttl > 590 && ttl <= 600, "ttl %lld", (long long)ttl);
}

Test(cli, get_miss_is_exit_1_and_silent) {
  run_t r;
  RUN(&r, "-s", SRV, "get", "nope");
  expect_ok(&r, 1, "");
  cr_assert_str_empty(r.err);
}

Test(cli, get_many_keys) {
  raw_set(&fx_mcd, "a", "1", 1, 0);
  raw_set(&fx_mcd, "b", "two", 3, 0);
  run_t r;
  RUN(&r, "-s", SRV, "get", "b", "a");
  expect_ok(&r, 0, "b two\na 1\n");
  RUN(&r, "-s", SRV, "get", "a", "missing", "b");
  expect_ok(&r, 1, "a 1\nb two\n");
  cr_assert_str_empty(r.err);
}

Test(cli, gets_and_cas) {
  raw_set(&fx_mcd, "c", "old", 3, 0);
  run_t r;
  RUN(&r, "-s", SRV, "gets", "c");
  expect_ok(&r, 0, NULL);
  char key[8], val[8];
  unsigned long long cas;
  cr_assert_eq(sscanf(r.out, "%7s %llu %7s", key, &cas, val), 3, "%s", r.out);
  cr_assert_str_eq(key, "c");
  cr_assert_str_eq(val, "old");
  char cas_s[32], stale_s[32];
  snprintf(cas_s, sizeof cas_s, "%llu", cas);
  snprintf(stale_s, sizeof stale_s, "%llu", cas + 1000);
  const step_t steps[] = {
      {{"cas", "c", stale_s, "nope"}, 1, .err = "EXISTS"},
      {{"cas", "c", cas_s, "new"}, 0, .out = ""},
      {{"get", "c"}, 0, .out = "new"},
      {{"cas", "c", cas_s, "again"}, 1, .err = "EXISTS"},
      {{"cas", "gone", "1", "v"}, 1, .err = "NOT_FOUND"},
      {{"cas", "c", "12a", "v"}, 2, .err = "CAS wants a number"},
  };
  RUN_STEPS(SRV, steps);
  /* Several keys: a line per hit, misses silent, exit 1. */
  RUN(&r, "-s", SRV, "gets", "c", "zz");
  expect_ok(&r, 1, NULL);
  cr_assert(strncmp(r.out, "c ", 2) == 0 && strstr(r.out, " new\n"), "%s",
            r.out);
}

Test(cli, add_replace_append_prepend) {
  const step_t steps[] = {
      {{"add", "k", "mid"}, 0, .out = ""},
      {{"add", "k", "again"}, 1, .err = "NOT_STORED"},
      {{"append", "k", ">"}, 0, .out = ""},
      {{"prepend", "k", "<"}, 0, .out = ""},
      {{"get", "k"}, 0, .out = "<mid>"},
      {{"replace", "k", "swapped"}, 0, .out = ""},
      {{"get", "k"}, 0, .out = "swapped"},
      {{"replace", "none", "v"}, 1, .err = "NOT_STORED"},
      {{"append", "none", "v"}, 1, .err = "NOT_STORED"},
      {{"prepend", "none", "v"}, 1, .err = "NOT_STORED"},
      {{"append", "k", "-"}, 0, .out = "", .in = "piped"},
      {{"get", "k"}, 0, .out = "swappedpiped"},
  };
  RUN_STEPS(SRV, steps);
}

Test(cli, delete_one_and_many) {
  raw_set(&fx_mcd, "d1", "x", 1, 0);
  raw_set(&fx_mcd, "d2", "x", 1, 0);
  raw_set(&fx_mcd, "d3", "x", 1, 0);
  const step_t steps[] = {
      {{"delete", "d1"}, 0, .out = ""},
      {{"delete", "d1"}, 1, .err = "d1: NOT_FOUND"},
      {{"delete", "d2", "d3"}, 0, .out = ""},
  };
  RUN_STEPS(SRV, steps);
  cr_assert_not(raw_has(&fx_mcd, "d2"));
  cr_assert_not(raw_has(&fx_mcd, "d3"));
  raw_set(&fx_mcd, "d4", "x", 1, 0);
  run_t r;
  RUN(&r, "-s", SRV, "delete", "d4", "d5");
  expect_err(&r, 1, "d5: NOT_FOUND");
  cr_assert_not(raw_has(&fx_mcd, "d4"));
}

Test(cli, incr_decr) {
  raw_set(&fx_mcd, "n", "10", 2, 0);
  raw_set(&fx_mcd, "text", "abc", 3, 0);
  const step_t steps[] = {
      {{"incr", "n"}, 0, .out = "11\n"},
      {{"incr", "n", "100"}, 0, .out = "111\n"},
      {{"decr", "n", "11"}, 0, .out = "100\n"},
      {{"decr", "n", "1000"}, 0, .out = "0\n"}, /* stops at 0 */
      {{"incr", "n", "18446744073709551615"},
       0,
       .out = "18446744073709551615\n"},
      {{"incr", "n", "18446744073709551616"}, 2, .err = "DELTA"},
      {{"incr", "none"}, 1, .err = "NOT_FOUND"},
      {{"decr", "none"}, 1, .err = "NOT_FOUND"},
      {{"incr", "text"}, 2, .err = "CLIENT_ERROR"},
      /* Nothing to print without a reply. */
      {{"incr", "n", "--noreply"}, 0, .out = ""},
  };
  RUN_STEPS(SRV, steps);
}

Test(cli, touch_sets_ttl) {
  raw_set(&fx_mcd, "t", "v", 1, 0);
  cr_assert_eq(raw_ttl(&fx_mcd, "t"), -1);
  run_t r;
  RUN(&r, "-s", SRV, "touch", "t", "500");
  expect_ok(&r, 0, "");
  int64_t ttl = raw_ttl(&fx_mcd, "t");
  cr_assert(ttl > 490 && ttl <= 500, "ttl %lld", (long long)ttl);
  const step_t steps[] = {
      {{"touch", "none", "5"}, 1, .err = "NOT_FOUND"},
      {{"touch", "t", "soon"}, 2, .err = "TTL wants seconds"},
      /* A negative TTL after "--" expires the item at once. */
      {{"touch", "--", "t", "-1"}, 0, .out = ""},
      {{"get", "t"}, 1, .out = ""},
  };
  RUN_STEPS(SRV, steps);
}

Test(cli, noreply_writes) {
  const step_t steps[] = {
      {{"--noreply", "set", "nr", "quiet"}, 0, .out = ""},
      {{"get", "nr"}, 0, .out = "quiet"},
      {{"delete", "nr", "--noreply"}, 0, .out = ""},
      {{"get", "nr"}, 1, .out = ""},
  };
  RUN_STEPS(SRV, steps);
}

Test(cli, bad_key_and_too_big) {
  run_t r;
  RUN(&r, "-s", SRV, "set", "bad key", "v");
  expect_err(&r, 2, "invalid key");
  RUN(&r, "-s", SRV, "get", "bad key");
  expect_err(&r, 2, "invalid key");
  char big[300];
  memset(big, 'k', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  RUN(&r, "-s", SRV, "delete", big);
  expect_err(&r, 2, "invalid key");
  size_t n = 1024 * 1024 + 1;
  char* v = malloc(n);
  memset(v, 'x', n);
  RUN_IN(&r, v, n, "-s", SRV, "set", "big", "-");
  free(v);
  expect_err(&r, 2, "larger than");
}

/* ---------------------------------------------------------------- nodes */

Test(cli, stats_version_flush_all) {
  run_t r;
  RUN(&r, "-s", SRV, "stats");
  expect_ok(&r, 0, NULL);
  cr_assert(strncmp(r.out, "pid ", 4) == 0, "%s", r.out);
  cr_assert(strstr(r.out, "\ncurr_items "));
  RUN(&r, "-s", SRV, "stats", "settings");
  expect_ok(&r, 0, NULL);
  cr_assert(strstr(r.out, "maxbytes "));
  RUN(&r, "-s", SRV, "stats", "no-such-group");
  expect_err(&r, 2, "ERROR");

  raw_t raw;
  raw_open(&raw, &fx_mcd);
  const char* v = raw_cmd(&raw, "version\r\n", "\r\n");
  char want[64];
  cr_assert_eq(sscanf(v, "VERSION %63s", want), 1);
  raw_close(&raw);
  strcat(want, "\n");
  RUN(&r, "-s", SRV, "version");
  expect_ok(&r, 0, want);

  raw_set(&fx_mcd, "f1", "x", 1, 0);
  RUN(&r, "-s", SRV, "flush_all");
  expect_ok(&r, 0, "");
  cr_assert_not(raw_has(&fx_mcd, "f1"));
  RUN(&r, "-s", SRV, "flush_all", "soon");
  expect_err(&r, 2, "DELAY");
}

Test(cli, several_nodes_have_headers) {
  mcd_t m2 = {0};
  mcd_start(&m2, NULL);
  char list[400];
  snprintf(list, sizeof list, "%s,%s", fx_mcd.servers, m2.servers);
  run_t r;
  RUN(&r, "-s", list, "version");
  expect_ok(&r, 0, NULL);
  cr_assert(strstr(r.out, fx_mcd.servers) && strstr(r.out, m2.servers), "%s",
            r.out);
  RUN(&r, "-s", list, "stats");
  expect_ok(&r, 0, NULL);
  char hdr[200];
  snprintf(hdr, sizeof hdr, "# %s\n", m2.servers);
  cr_assert(strstr(r.out, hdr), "%s", r.out);
  /* Values land on the node locate names. */
  RUN(&r, "-s", list, "set", "routed", "v");
  expect_ok(&r, 0, "");
  RUN(&r, "-s", list, "locate", "routed");
  expect_ok(&r, 0, NULL);
  const mcd_t* owner = strstr(r.out, m2.servers) ? &m2 : &fx_mcd;
  const mcd_t* other = owner == &m2 ? &fx_mcd : &m2;
  cr_assert(raw_has(owner, "routed"));
  cr_assert_not(raw_has(other, "routed"));
  RUN(&r, "-s", list, "flush_all");
  expect_ok(&r, 0, "");
  mcd_stop(&m2);
  /* A node down: that node's error, exit 2. */
  RUN(&r, "-s", list, "version");
  cr_assert_eq(r.rc, 2);
  cr_assert(strstr(r.out, fx_mcd.servers));
}

/* ---------------------------------------------------------------- ring */

Test(cli_nosrv, locate_matches_the_library) {
  const char* list = "10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211:2";
  mcr_ring_t* ring;
  cr_assert_eq(
      mcr_ring_build(&ring, MCR_DIST_KETAMA_LIBMEMCACHED, list, NULL, 0), 0);
  run_t r;
  RUN_IN(&r, "alpha\nbeta\r\ngamma\n", 18, "-s", list, "-d",
         "ketama-libmemcached", "locate");
  expect_ok(&r, 0, NULL);
  char want[512] = "";
  const char* keys[] = {"alpha", "beta", "gamma"};
  for (size_t i = 0; i < 3; i++) {
    mcr_ring_node_t nd;
    mcr_ring_node(ring, mcr_ring_locate(ring, keys[i], strlen(keys[i])), &nd);
    size_t l = strlen(want);
    snprintf(want + l, sizeof want - l, "%s %s:%u\n", keys[i], nd.host,
             nd.port);
  }
  cr_assert_str_eq(r.out, want);
  /* The same keys as arguments. */
  RUN(&r, "locate", "alpha", "beta", "gamma", "-s", list, "-d",
      "ketama-libmemcached");
  expect_ok(&r, 0, want);
  RUN(&r, "-s", list, "locate", "bad key");
  expect_err(&r, 2, "invalid key");
  mcr_ring_free(ring);
}

Test(cli_nosrv, ring_in_process) {
  run_t r;
  RUN(&r, "-s", "10.0.0.1:11211,10.0.0.2:11211:3", "-d", "xxh3", "ring");
  expect_ok(&r, 0, NULL);
  cr_assert(strstr(r.out, "generation 0 (built in process)\n"), "%s", r.out);
  cr_assert(strstr(r.out, "mode xxh3\nnodes 2\n"), "%s", r.out);
  cr_assert(strstr(r.out, "10.0.0.2:11211"));
  RUN(&r, "-s", "10.0.0.1:11211", "ring");
  expect_ok(&r, 0, "single node 10.0.0.1:11211: no ring\n");
}

/* The embedded discovery: the nodes an ElastiCache endpoint lists. */
Test(cli, elasticache_endpoint) {
  char file[128];
  tmpname(file, sizeof file, "nodes");
  char line[96];
  snprintf(line, sizeof line, "127.0.0.1|127.0.0.1|%d\n", fx_mcd.port);
  cr_assert_eq(fakecfg_write_file(file, line), 0);
  fakecfg_t* f = fakecfg_start(&(fakecfg_opts_t){.nodes_file = file});
  cr_assert(f);
  const char* ep = fakecfg_endpoint(f);
  run_t r;
  RUN(&r, "--elasticache", ep, "set", "ec:k", "v1");
  expect_ok(&r, 0, "");
  cr_assert(raw_has(&fx_mcd, "ec:k"));
  RUN(&r, "get", "ec:k", "--elasticache", ep);
  expect_ok(&r, 0, "v1");
  RUN(&r, "--elasticache", ep, "ring");
  expect_ok(&r, 0, NULL);
  char want[160];
  snprintf(want, sizeof want, "(built in process from %s)\n", ep);
  cr_assert(strstr(r.out, want), "%s", r.out);
  cr_assert(strstr(r.out, "nodes 1\n"), "%s", r.out);
  RUN(&r, "-s", SRV, "--elasticache", ep, "get", "ec:k");
  expect_err(&r, 2, "one of --servers, --ring-dir and --elasticache");
  fakecfg_set_mode(f, FAKECFG_MALFORMED);
  RUN(&r, "--elasticache", ep, "get", "ec:k");
  expect_err(&r, 2, ep);
  fakecfg_stop(f);
  unlink(file);
}

/* ---------------------------------------------------------------- watch */

typedef struct {
  char dir[64];
  char ring[96];
} wenv_t;

static void wenv_init(wenv_t* w) {
  snprintf(w->dir, sizeof w->dir, "/tmp/mcr-cli-XXXXXX");
  cr_assert(mkdtemp(w->dir), "mkdtemp: %s", strerror(errno));
  snprintf(w->ring, sizeof w->ring, "%s/ring", w->dir);
}

static void wenv_fini(wenv_t* w) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", w->dir);
  if (system(cmd) != 0) { /* leftovers in /tmp are harmless */
  }
}

/* Publishes one generation of `servers` with the built agent. */
static void publish(const wenv_t* w, const char* servers) {
  const char* args[] = {"--config", "/dev/null", "--once", "--log-level",
                        "error",    "--servers", servers,  "--ring-dir",
                        w->ring,    NULL};
  cr_assert_eq(wait_exit(agent_spawn(NULL, args, NULL), DEADLINE_MS), 0,
               "mcring-agent --once failed");
}

/* Waits until the file holds `lines` newlines; returns its text. */
static const char* wait_lines(const char* path, int lines, char* buf,
                              size_t cap) {
  int64_t end = now_ms() + DEADLINE_MS;
  for (;;) {
    deploy_slurp_into(path, buf, cap);
    int n = 0;
    for (const char* p = buf; (p = strchr(p, '\n')); p++)
      n++;
    if (n >= lines)
      return buf;
    if (now_ms() > end)
      cr_assert_fail("%d lines never came; have: %s", lines, buf);
    usleep(10000);
  }
}

Test(cli_nosrv, watch_prints_changes_until_sigint) {
  wenv_t w;
  wenv_init(&w);
  publish(&w, "127.0.0.1:1001,127.0.0.1:1002");
  char outf[128], errf[128], buf[4096];
  tmpname(outf, sizeof outf, "wout");
  tmpname(errf, sizeof errf, "werr");
  pid_t pid = spawn_tool(NULL, outf, errf,
                         (const char* const[]){"watch", "-r", w.ring, NULL});
  wait_lines(outf, 1, buf, sizeof buf);
  cr_assert(strstr(buf,
                   " generation 1 ketama nodes 2 +127.0.0.1:1001 "
                   "+127.0.0.1:1002\n"),
            "%s", buf);
  cr_assert(buf[4] == '-' && buf[10] == 'T' && strchr(buf, 'Z'), "%s", buf);
  publish(&w, "127.0.0.1:1002,127.0.0.1:1003");
  wait_lines(outf, 2, buf, sizeof buf);
  cr_assert(strstr(buf,
                   " generation 2 ketama nodes 2 +127.0.0.1:1003 "
                   "-127.0.0.1:1001\n"),
            "%s", buf);
  publish(&w, "127.0.0.1:1002,127.0.0.1:1003,127.0.0.1:1004");
  wait_lines(outf, 3, buf, sizeof buf);
  cr_assert(strstr(buf, " generation 3 ketama nodes 3 +127.0.0.1:1004\n"), "%s",
            buf);
  kill(pid, SIGINT);
  cr_assert_eq(wait_exit(pid, DEADLINE_MS), 0);
  deploy_slurp_into(errf, buf, sizeof buf);
  cr_assert_str_empty(buf);
  unlink(outf);
  unlink(errf);
  wenv_fini(&w);
}

Test(cli_nosrv, watch_waits_for_first_ring_and_counts) {
  wenv_t w;
  wenv_init(&w);
  cr_assert_eq(mkdir(w.ring, 0750), 0);
  char outf[128], errf[128], buf[4096];
  tmpname(outf, sizeof outf, "wout");
  tmpname(errf, sizeof errf, "werr");
  pid_t pid = spawn_tool(
      NULL, outf, errf,
      (const char* const[]){"watch", "--count", "1", "-r", w.ring, NULL});
  wait_lines(errf, 1, buf, sizeof buf);
  cr_assert(strstr(buf, "waiting for a ring"), "%s", buf);
  publish(&w, "127.0.0.1:2001");
  wait_lines(outf, 1, buf, sizeof buf);
  publish(&w, "127.0.0.1:2002");
  /* --count 1: exits by itself after one change. */
  cr_assert_eq(wait_exit(pid, DEADLINE_MS), 0);
  deploy_slurp_into(outf, buf, sizeof buf);
  cr_assert(strstr(buf,
                   "generation 2 ketama nodes 1 +127.0.0.1:2002 "
                   "-127.0.0.1:2001\n"),
            "%s", buf);
  unlink(outf);
  unlink(errf);
  wenv_fini(&w);
}

Test(cli_nosrv, watch_needs_a_ring_dir) {
  const step_t steps[] = {
      {{"watch"}, 2, .err = "--ring-dir"},
      {{"watch", "-r", "/nonexistent/mcring"}, 2, .err = "No such file"},
      {{"watch", "-r", "/tmp", "--count", "0"}, 2, .err = "--count"},
  };
  RUN_STEPS(NULL, steps);
}

Test(cli, ring_dir_routes_and_reports) {
  wenv_t w;
  wenv_init(&w);
  publish(&w, fx_mcd.servers);
  run_t r;
  RUN(&r, "-r", w.ring, "set", "viaring", "yes");
  expect_ok(&r, 0, "");
  cr_assert(raw_has(&fx_mcd, "viaring"));
  RUN(&r, "-r", w.ring, "ring");
  expect_ok(&r, 0, NULL);
  cr_assert(strstr(r.out, "# agent\n") && strstr(r.out, "generation 1\n"), "%s",
            r.out);
  wenv_fini(&w);
}

/* A published file altered in place (its first point made the largest):
 * a plain reader still routes by it (header and node table are fine),
 * --verify refuses it (its checksum no longer matches). */
Test(cli, verify_checks_the_ring_file_in_full) {
  wenv_t w;
  wenv_init(&w);
  publish(&w, fx_mcd.servers);
  char path[300];
  snprintf(path, sizeof path, "%s/ring.1", w.ring);
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
  uint64_t points_off;
  cr_assert_eq(
      pread(fd, &points_off, 8, offsetof(mcr__snap_header_t, points_off)), 8);
  uint32_t big = UINT32_MAX;
  cr_assert_eq(pwrite(fd, &big, 4, (off_t)points_off), 4);
  close(fd);
  run_t r;
  RUN(&r, "-r", w.ring, "ring");
  expect_ok(&r, 0, NULL);
  RUN(&r, "-r", w.ring, "--verify", "ring");
  expect_err(&r, 2, "checksum mismatch");
  wenv_fini(&w);
}

/* ---------------------------------------------------------------- stat */

Test(cli, stat_adds_up_the_workers) {
  wenv_t w;
  wenv_init(&w);
  publish(&w, fx_mcd.servers);
  /* The agent's host stats server, as a running agent serves it. */
  mcr_hoststats_server_t* srv;
  char err[256];
  cr_assert_eq(mcr_hoststats_serve(&srv, w.ring, 16, err, sizeof err), 0, "%s",
               err);
  /* Two live client handles of this process: two slots. */
  mcr_client_opts_t o = opts_default();
  o.servers = NULL;
  o.ring_dir = w.ring;
  mcr_client_t* a = client_new(NULL, &o);
  mcr_client_t* b = client_new(NULL, &o);
  cl_set(a, "s1", "v");
  cl_expect(a, "s1", "v");
  cl_expect_miss(b, "s2");
  cl_expect_miss(b, "s3");

  run_t r;
  RUN(&r, "stat", "-r", w.ring);
  expect_ok(&r, 0, NULL);
  cr_assert(strncmp(r.out, "workers 2 nodes 1\n", 18) == 0, "%s", r.out);
  /* total: gets 3, sets 1, deletes 0, others 0, hits 1, misses 2. */
  cr_assert(strstr(r.out, "\ntotal ") && strstr(r.out, "# nodes\n") &&
                strstr(r.out, "# workers\n"),
            "%s", r.out);
  unsigned long long g, s, d, x, h, m;
  const char* tot = strstr(r.out, "\ntotal ") + 7;
  cr_assert_eq(
      sscanf(tot, "%llu %llu %llu %llu %llu %llu", &g, &s, &d, &x, &h, &m), 6);
  cr_assert(g == 3 && s == 1 && d == 0 && h == 1 && m == 2, "total: %s", tot);
  cr_assert(strstr(r.out, fx_mcd.servers));

  RUN(&r, "stat", "-r", w.ring, "--json");
  expect_ok(&r, 0, NULL);
  cr_assert(strncmp(r.out, "{\"workers\":2,\"total\":{\"gets\":3,\"sets\":1,",
                    38) == 0,
            "%s", r.out);
  cr_assert(strstr(r.out, "\"slots\":[{\"pid\":"), "%s", r.out);

  RUN(&r, "stat", "-r", w.ring, "--prometheus");
  expect_ok(&r, 0, NULL);
  char want[256];
  snprintf(want, sizeof want,
           "\nmcring_operations_total{node=\"%s\",kind=\"get\"} 3\n",
           fx_mcd.servers);
  cr_assert(strstr(r.out, want), "%s", r.out);
  cr_assert(strstr(r.out, "# TYPE mcring_latency_seconds histogram\n"));
  cr_assert(strstr(r.out, "le=\"+Inf\"} 4\n"), "%s", r.out);

  /* A freed handle gives its slot back. */
  mcr_client_free(b);
  RUN(&r, "stat", "-r", w.ring);
  expect_ok(&r, 0, NULL);
  cr_assert(strncmp(r.out, "workers 1 ", 10) == 0, "%s", r.out);
  mcr_client_free(a);
  mcr_hoststats_server_free(srv);
  wenv_fini(&w);
}

/* A node every worker of the host should stop trying: `stat` and `ring`
 * show it down host-wide, by whom, and the live one up. */
Test(cli, stat_and_ring_show_host_wide_health) {
  wenv_t w;
  wenv_init(&w);
  char list[600];
  snprintf(list, sizeof list, "%.500s,127.0.0.1:1", fx_mcd.servers);
  publish(&w, list);
  mcr_hoststats_server_t* srv;
  char err[256];
  cr_assert_eq(mcr_hoststats_serve(&srv, w.ring, 16, err, sizeof err), 0, "%s",
               err);
  mcr_client_opts_t o = opts_default();
  o.servers = NULL;
  o.ring_dir = w.ring;
  o.failure_limit = 1;
  o.retry_timeout_ms = 60000;
  mcr_client_t* c = client_new(NULL, &o);
  /* Keys until one lands on the dead node (refused: marked down). */
  mcr_item_t it;
  int rc = 0;
  for (int i = 0; i < 200 && rc != MCR_ECONNECT; i++) {
    char k[16];
    int kl = snprintf(k, sizeof k, "hh%d", i);
    rc = mcr_client_get(c, k, (size_t)kl, &it);
  }
  cr_assert_eq(rc, MCR_ECONNECT, "no key reached the dead node");

  run_t r;
  RUN(&r, "stat", "-r", w.ring);
  expect_ok(&r, 0, NULL);
  char want[128];
  snprintf(want, sizeof want, "by pid %d, next probe in ", (int)getpid());
  const char* h = strstr(r.out, "# health (host-wide)\n");
  cr_assert(h, "%s", r.out);
  cr_assert(strstr(h, "127.0.0.1:1 ") && strstr(h, want), "%s", h);
  const char* live = strstr(h, fx_mcd.servers);
  cr_assert(live && strncmp(strchr(live, ' ') + strspn(strchr(live, ' '), " "),
                            "up\n", 3) == 0,
            "%s", h);

  RUN(&r, "-r", w.ring, "ring");
  expect_ok(&r, 0, NULL);
  cr_assert(strstr(r.out, "  health\n"), "%s", r.out);
  cr_assert(strstr(r.out, "  up\n") && strstr(r.out, "  down "), "%s", r.out);
  mcr_client_free(c);
  mcr_hoststats_server_free(srv);
  wenv_fini(&w);
}

Test(cli_nosrv, stat_errors) {
  const step_t steps[] = {
      {{"stat"}, 2, .err = "--ring-dir"},
      {{"stat", "-r", "/nonexistent/mcring"}, 2, .err = "mcring: "},
      {{"stat", "-r", "/tmp", "-w", "--json"}, 2, .err = "-w prints text"},
      {{"stat", "-r", "/tmp", "--interval", "0"}, 2, .err = "--interval"},
  };
  RUN_STEPS(NULL, steps);
}
