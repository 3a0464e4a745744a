/* test_client.c — every classic text command against a real memcached.
 *
 * Each test gets its own memcached (Criterion forks per test, so the init
 * fixture runs in the test's own process) and a client with default
 * options unless the test needs others. Outcomes are checked through the
 * library and, where the library could fool itself, through a raw
 * connection that reads what the server really holds: flags on the wire,
 * compressed bytes, TTLs ("mg <key> t") and statistics (cmd_set, cmd_get)
 * that prove a rejected call sent nothing.
 *
 * Covered: storage commands with each outcome, retrievals single and
 * multi-key (misses, duplicates, order), delete, incr/decr (floor at 0, wrap
 * at 2^64, non-numeric), touch, stats with each group, flush_all with and
 * without delay, version, verbosity, cache_memlimit, quit; noreply per call
 * and as the client default; the item size limit on both sides of it;
 * binary and empty values; zstd compression and its flag bit; serde hooks;
 * ignore_errors; IPv6, unix sockets and reconnection after a restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"

#define K(s) (s), strlen(s)
#define V(s) (s), strlen(s)

TestSuite(client, .init = fx_setup, .fini = fx_teardown, .timeout = 60);
/* Tests that start memcached with options of their own. */
TestSuite(client_own, .fini = fx_teardown, .timeout = 60);

/* ---------------------------------------------------------------- storage */

Test(client, set_then_get) {
  assert_rc(mcr_client_set(fx_client, K("k"), V("hello"), 42, 0, 0), MCR_OK);
  mcr_item_t item;
  memset(&item, 0x5a, sizeof item);
  assert_rc(mcr_client_get(fx_client, K("k"), &item), MCR_OK);
  assert_value(item, "hello", 5);
  cr_assert_eq(item.flags, 42);
  cr_assert_eq(item.cas, 0, "get must not report a cas");
  /* The flags reached the server as given. */
  char buf[16];
  size_t len;
  uint32_t flags;
  cr_assert(raw_get(&fx_mcd, "k", buf, sizeof buf, &len, &flags));
  cr_assert_eq(flags, 42);
  /* Overwrite. */
  assert_rc(mcr_client_set(fx_client, K("k"), V("bye"), ~MCR_FLAG_ZSTD, 0, 0),
            MCR_OK);
  assert_rc(mcr_client_get(fx_client, K("k"), &item), MCR_OK);
  assert_value(item, "bye", 3);
  cr_assert_eq(item.flags, ~MCR_FLAG_ZSTD);
}

Test(client, caller_flags_with_the_zstd_bit_are_refused) {
  /* MCR_FLAG_ZSTD is mcring's own: a caller value carrying it would be
   * "decompressed" on the way back, so it is refused before sending. */
  uint64_t sets = mcd_stat(&fx_mcd, "cmd_set");
  int rc = mcr_client_set(fx_client, K("z"), V("v"), MCR_FLAG_ZSTD, 0, 0);
  cr_assert_lt(rc, 0, "set with the zstd bit: %d", rc);
  rc = mcr_client_set(fx_client, K("z"), V("v"), 0xffffffffu, 0, 0);
  cr_assert_lt(rc, 0, "set with all flag bits: %d", rc);
  cr_assert_eq(mcd_stat(&fx_mcd, "cmd_set"), sets);
}

Test(client, get_miss) {
  mcr_item_t item;
  assert_rc(mcr_client_get(fx_client, K("nothing"), &item), MCR_MISS);
  assert_rc(mcr_client_gets(fx_client, K("nothing"), &item), MCR_MISS);
}

Test(client, add) {
  assert_rc(mcr_client_add(fx_client, K("a"), V("1"), 0, 0, 0), MCR_OK);
  assert_rc(mcr_client_add(fx_client, K("a"), V("2"), 0, 0, 0), MCR_NOT_STORED);
  cl_expect(fx_client, "a", "1");
}

Test(client, replace) {
  assert_rc(mcr_client_replace(fx_client, K("r"), V("1"), 0, 0, 0),
            MCR_NOT_STORED);
  cl_expect_miss(fx_client, "r");
  cl_set(fx_client, "r", "1");
  assert_rc(mcr_client_replace(fx_client, K("r"), V("2"), 3, 0, 0), MCR_OK);
  cl_expect(fx_client, "r", "2");
}

Test(client, append_prepend) {
  assert_rc(mcr_client_append(fx_client, K("ap"), V("x"), 0), MCR_NOT_STORED);
  assert_rc(mcr_client_prepend(fx_client, K("ap"), V("x"), 0), MCR_NOT_STORED);
  cl_expect_miss(fx_client, "ap");
  assert_rc(mcr_client_set(fx_client, K("ap"), V("mid"), 9, 0, 0), MCR_OK);
  assert_rc(mcr_client_append(fx_client, K("ap"), V("-post"), 0), MCR_OK);
  assert_rc(mcr_client_prepend(fx_client, K("ap"), V("pre-"), 0), MCR_OK);
  mcr_item_t item;
  assert_rc(mcr_client_get(fx_client, K("ap"), &item), MCR_OK);
  assert_value(item, "pre-mid-post", 12);
  cr_assert_eq(item.flags, 9, "append keeps the item's flags");
}

Test(client, cas) {
  cl_set(fx_client, "c", "v1");
  mcr_item_t item;
  assert_rc(mcr_client_gets(fx_client, K("c"), &item), MCR_OK);
  uint64_t cas1 = item.cas;
  cr_assert_neq(cas1, 0);
  assert_rc(mcr_client_cas(fx_client, K("c"), V("v2"), 0, 0, cas1, 0), MCR_OK);
  cl_expect(fx_client, "c", "v2");
  /* The old cas unique is stale now. */
  assert_rc(mcr_client_cas(fx_client, K("c"), V("v3"), 0, 0, cas1, 0),
            MCR_EXISTS);
  cl_expect(fx_client, "c", "v2");
  assert_rc(mcr_client_gets(fx_client, K("c"), &item), MCR_OK);
  cr_assert_neq(item.cas, cas1, "cas unique changes on every store");
  assert_rc(mcr_client_delete(fx_client, K("c"), 0), MCR_OK);
  assert_rc(mcr_client_cas(fx_client, K("c"), V("v4"), 0, 0, item.cas, 0),
            MCR_NOT_FOUND);
}

Test(client, negative_ttl_expires_at_once) {
  assert_rc(mcr_client_set(fx_client, K("t"), V("v"), 0, -1, 0), MCR_OK);
  cl_expect_miss(fx_client, "t");
  assert_rc(mcr_client_set(fx_client, K("t"), V("v"), 0, 1000, 0), MCR_OK);
  int64_t ttl = raw_ttl(&fx_mcd, "t");
  cr_assert(ttl > 990 && ttl <= 1000, "ttl %lld", (long long)ttl);
}

/* ---------------------------------------------------------------- retrieval */

Test(client, gat_gats) {
  mcr_item_t item;
  assert_rc(mcr_client_gat(fx_client, K("g"), 100, &item), MCR_MISS);
  assert_rc(mcr_client_gats(fx_client, K("g"), 100, &item), MCR_MISS);
  assert_rc(mcr_client_set(fx_client, K("g"), V("val"), 5, 0, 0), MCR_OK);
  cr_assert_eq(raw_ttl(&fx_mcd, "g"), -1);
  assert_rc(mcr_client_gat(fx_client, K("g"), 500, &item), MCR_OK);
  assert_value(item, "val", 3);
  cr_assert_eq(item.flags, 5);
  int64_t ttl = raw_ttl(&fx_mcd, "g");
  cr_assert(ttl > 490 && ttl <= 500, "gat set ttl %lld", (long long)ttl);
  assert_rc(mcr_client_gats(fx_client, K("g"), 0, &item), MCR_OK);
  assert_value(item, "val", 3);
  cr_assert_neq(item.cas, 0);
  cr_assert_eq(raw_ttl(&fx_mcd, "g"), -1, "gats 0 makes it never expire");
  assert_rc(mcr_client_gat(fx_client, K("g"), -1, &item), MCR_OK);
  cl_expect_miss(fx_client, "g");
}

Test(client, get_multi_misses_duplicates_order) {
  assert_rc(mcr_client_set(fx_client, K("m1"), V("one"), 1, 0, 0), MCR_OK);
  assert_rc(mcr_client_set(fx_client, K("m2"), V("two"), 2, 0, 0), MCR_OK);
  assert_rc(mcr_client_set(fx_client, K("m3"), V(""), 3, 0, 0), MCR_OK);
  const char* keys[] = {"m2", "nope", "m1", "m2", "m3", "nada", "m1"};
  size_t lens[7];
  for (int i = 0; i < 7; i++)
    lens[i] = strlen(keys[i]);
  mcr_item_t items[7];
  int hits = t_get_multi(fx_client, 7, keys, lens, items);
  cr_assert_eq(hits, 5, "hits %d", hits);
  const char* want[] = {"two", NULL, "one", "two", "", NULL, "one"};
  const uint32_t wflags[] = {2, 0, 1, 2, 3, 0, 1};
  for (int i = 0; i < 7; i++) {
    if (want[i] == NULL) {
      assert_rc(items[i].status, MCR_MISS);
      continue;
    }
    assert_rc(items[i].status, MCR_OK);
    assert_value(items[i], want[i], strlen(want[i]));
    cr_assert_eq(items[i].flags, wflags[i], "key %d", i);
  }
  /* All misses. */
  const char* none[] = {"x1", "x2"};
  size_t nlens[] = {2, 2};
  cr_assert_eq(t_get_multi(fx_client, 2, none, nlens, items), 0);
  assert_rc(items[0].status, MCR_MISS);
  assert_rc(items[1].status, MCR_MISS);
}

Test(client, gets_multi_reports_cas) {
  cl_set(fx_client, "a", "1");
  cl_set(fx_client, "b", "2");
  mcr_item_t one;
  assert_rc(mcr_client_gets(fx_client, K("b"), &one), MCR_OK);
  const char* keys[] = {"a", "zz", "b"};
  size_t lens[] = {1, 2, 1};
  mcr_item_t items[3];
  cr_assert_eq(t_gets_multi(fx_client, 3, keys, lens, items), 2);
  assert_rc(items[1].status, MCR_MISS);
  cr_assert_neq(items[0].cas, 0);
  cr_assert_eq(items[2].cas, one.cas);
  cr_assert_neq(items[0].cas, items[2].cas);
  assert_rc(mcr_client_cas(fx_client, K("a"), V("A"), 0, 0, items[0].cas, 0),
            MCR_OK);
}

Test(client, get_multi_many_keys) {
  /* More keys than fit in one small request buffer. */
  enum { N = 300 };
  static char names[N][32];
  const char* keys[N];
  size_t lens[N];
  static mcr_item_t items[N];
  for (int i = 0; i < N; i++) {
    lens[i] = (size_t)snprintf(names[i], sizeof names[i], "many-%d", i);
    keys[i] = names[i];
    if (i % 3 == 0)
      assert_rc(mcr_client_set(fx_client, keys[i], lens[i], keys[i], lens[i],
                               (uint32_t)i << 9, 0, 0),
                MCR_OK);
  }
  cr_assert_eq(t_get_multi(fx_client, N, keys, lens, items), N / 3);
  for (int i = 0; i < N; i++) {
    if (i % 3 != 0) {
      assert_rc(items[i].status, MCR_MISS);
      continue;
    }
    assert_rc(items[i].status, MCR_OK);
    assert_value(items[i], keys[i], lens[i]);
    cr_assert_eq(items[i].flags, (uint32_t)i << 9);
  }
}

/* ---------------------------------------------------------------- delete */

Test(client, delete) {
  assert_rc(mcr_client_delete(fx_client, K("d"), 0), MCR_NOT_FOUND);
  cl_set(fx_client, "d", "x");
  assert_rc(mcr_client_delete(fx_client, K("d"), 0), MCR_OK);
  cl_expect_miss(fx_client, "d");
  assert_rc(mcr_client_delete(fx_client, K("d"), 0), MCR_NOT_FOUND);
}

/* ---------------------------------------------------------------- incr/decr */

/* Asserts that key holds the decimal `want`. memcached rewrites a shorter
 * result in place and pads it with spaces ("0 " after decr from "12"). */
static void expect_number(const char* key, const char* want) {
  mcr_item_t item;
  assert_rc(mcr_client_get(fx_client, key, strlen(key), &item), MCR_OK);
  size_t wl = strlen(want);
  cr_assert_geq(item.value_len, wl, "%s: %.*s", key, (int)item.value_len,
                item.value);
  cr_assert(memcmp(item.value, want, wl) == 0, "%s: %.*s want %s", key,
            (int)item.value_len, item.value, want);
  for (size_t i = wl; i < item.value_len; i++)
    cr_assert_eq(item.value[i], ' ', "%s: %.*s want %s", key,
                 (int)item.value_len, item.value, want);
}

Test(client, incr_decr) {
  uint64_t v = 12345;
  assert_rc(mcr_client_incr(fx_client, K("n"), 1, &v, 0), MCR_NOT_FOUND);
  assert_rc(mcr_client_decr(fx_client, K("n"), 1, &v, 0), MCR_NOT_FOUND);
  cl_set(fx_client, "n", "10");
  assert_rc(mcr_client_incr(fx_client, K("n"), 5, &v, 0), MCR_OK);
  cr_assert_eq(v, 15);
  assert_rc(mcr_client_decr(fx_client, K("n"), 3, &v, 0), MCR_OK);
  cr_assert_eq(v, 12);
  assert_rc(mcr_client_incr(fx_client, K("n"), 0, NULL, 0), MCR_OK);
  expect_number("n", "12");
  /* decr stops at 0. */
  assert_rc(mcr_client_decr(fx_client, K("n"), 1000, &v, 0), MCR_OK);
  cr_assert_eq(v, 0);
  expect_number("n", "0");
  /* Large deltas: the full 64-bit range goes over the wire. */
  assert_rc(mcr_client_incr(fx_client, K("n"), UINT64_MAX - 1, &v, 0), MCR_OK);
  cr_assert_eq(v, UINT64_MAX - 1);
}

Test(client, incr_wraps_at_2_64) {
  cl_set(fx_client, "w", "18446744073709551615");
  uint64_t v = 77;
  assert_rc(mcr_client_incr(fx_client, K("w"), 2, &v, 0), MCR_OK);
  cr_assert_eq(v, 1);
  expect_number("w", "1");
}

Test(client, incr_non_numeric_is_client_error) {
  cl_set(fx_client, "s", "abc");
  uint64_t v = 0;
  assert_rc(mcr_client_incr(fx_client, K("s"), 1, &v, 0), MCR_ECLIENTERR);
  const char* err = mcr_client_last_error(fx_client);
  cr_assert(strstr(err, "non-numeric") != NULL, "last error: %s", err);
  assert_rc(mcr_client_decr(fx_client, K("s"), 1, &v, 0), MCR_ECLIENTERR);
  /* The connection stays usable after a complete error reply. */
  cl_expect(fx_client, "s", "abc");
}

/* ---------------------------------------------------------------- touch */

Test(client, touch) {
  assert_rc(mcr_client_touch(fx_client, K("t"), 100, 0), MCR_NOT_FOUND);
  cl_set(fx_client, "t", "v");
  assert_rc(mcr_client_touch(fx_client, K("t"), 300, 0), MCR_OK);
  int64_t ttl = raw_ttl(&fx_mcd, "t");
  cr_assert(ttl > 290 && ttl <= 300, "ttl %lld", (long long)ttl);
  assert_rc(mcr_client_touch(fx_client, K("t"), -1, 0), MCR_OK);
  cl_expect_miss(fx_client, "t");
}

/* ---------------------------------------------------------------- stats */

/* Value of `name` in a stats array, or NULL. */
static const char* stat_find(const mcr_stat_t* s, int n, const char* name) {
  for (int i = 0; i < n; i++)
    if (strcmp(s[i].name, name) == 0)
      return s[i].value;
  return NULL;
}

/* True when some stat name contains `part`. */
static bool stat_has(const mcr_stat_t* s, int n, const char* part) {
  for (int i = 0; i < n; i++)
    if (strstr(s[i].name, part) != NULL)
      return true;
  return false;
}

Test(client, stats_general) {
  const mcr_stat_t* s = NULL;
  int n = t_stats_node(fx_client, 0, NULL, &s);
  cr_assert_gt(n, 20, "%d stats", n);
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)fx_mcd.pid);
  cr_assert_str_eq(stat_find(s, n, "pid"), pid);
  cr_assert_not_null(stat_find(s, n, "version"));
  cr_assert_not_null(stat_find(s, n, "curr_items"));
  cr_assert_not_null(stat_find(s, n, "uptime"));
  /* The numbers are the server's: two sets show up in cmd_set. */
  uint64_t before = strtoull(stat_find(s, n, "cmd_set"), NULL, 10);
  cl_set(fx_client, "x", "1");
  cl_set(fx_client, "y", "2");
  n = t_stats_node(fx_client, 0, NULL, &s);
  cr_assert_eq(strtoull(stat_find(s, n, "cmd_set"), NULL, 10), before + 2);
}

Test(client, stats_groups) {
  cl_set(fx_client, "i", "1");
  struct {
    const char* arg;
    const char* expect; /* a name, or part of one, in the reply */
  } g[] = {{"settings", "item_size_max"},
           {"items", "items:"},
           {"slabs", "active_slabs"},
           {"sizes", "sizes"},
           {"conns", ":state"}};
  for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
    const mcr_stat_t* s = NULL;
    int n = t_stats_node(fx_client, 0, g[i].arg, &s);
    cr_assert_gt(n, 0, "stats %s: %d (%s)", g[i].arg, n,
                 n < 0 ? mcr_err_name(n) : "");
    cr_assert(stat_has(s, n, g[i].expect), "stats %s lacks %s", g[i].arg,
              g[i].expect);
  }
  const mcr_stat_t* s = NULL;
  int n = t_stats_node(fx_client, 0, "settings", &s);
  cr_assert_str_eq(stat_find(s, n, "item_size_max"), "1048576");
}

Test(client, stats_errors) {
  const mcr_stat_t* s = NULL;
  assert_rc(t_stats_node(fx_client, 0, "bogus", &s), MCR_ESERVERCMD);
  uint64_t cmds = mcd_stat(&fx_mcd, "cmd_get");
  /* Not one word: refused before sending. */
  assert_rc(t_stats_node(fx_client, 0, "a\r\nflush_all", &s), MCR_EINVAL);
  assert_rc(t_stats_node(fx_client, 0, "items\r\n", &s), MCR_EINVAL);
  assert_rc(t_stats_node(fx_client, 0, "", &s), MCR_EINVAL);
  assert_rc(t_stats_node(fx_client, 1, NULL, &s), MCR_EINVAL);
  cr_assert_eq(mcd_stat(&fx_mcd, "cmd_get"), cmds);
  cr_assert_gt(t_stats_node(fx_client, 0, NULL, &s), 0);
}

/* ---------------------------------------------------------------- cluster */

Test(client, flush_all_now) {
  cl_set(fx_client, "f1", "1");
  cl_set(fx_client, "f2", "2");
  assert_rc(mcr_client_flush_all(fx_client, 0, 0), MCR_OK);
  cl_expect_miss(fx_client, "f1");
  cl_expect_miss(fx_client, "f2");
  cr_assert_eq(mcd_stat(&fx_mcd, "cmd_flush"), 1);
}

Test(client, flush_all_delayed) {
  cl_set(fx_client, "f", "1");
  /* memcached's clock ticks once a second and, with cas enabled, a delay d
   * takes effect at tick d - 2: 4 leaves two ticks of margin. */
  assert_rc(mcr_client_flush_all(fx_client, 4, 0), MCR_OK);
  cl_expect(fx_client, "f", "1");
  cr_assert_eq(mcd_stat(&fx_mcd, "cmd_flush"), 1);
  int64_t deadline = now_ms() + 8000;
  mcr_item_t item;
  int rc;
  while ((rc = mcr_client_get(fx_client, K("f"), &item)) == MCR_OK &&
         now_ms() < deadline)
    usleep(100 * 1000);
  assert_rc(rc, MCR_MISS);
}

Test(client, version) {
  const char* v = NULL;
  cr_assert_geq(mcr_client_version(fx_client, 0, &v), 0);
  cr_assert_not_null(v);
  raw_t r;
  raw_open(&r, &fx_mcd);
  const char* want = raw_cmd(&r, "version\r\n", "\r\n");
  char line[64];
  snprintf(line, sizeof line, "VERSION %s\r\n", v);
  cr_assert_str_eq(want, line);
  raw_close(&r);
  assert_rc(mcr_client_version(fx_client, 1, &v), MCR_EINVAL);
}

Test(client, verbosity) {
  assert_rc(mcr_client_verbosity(fx_client, 1, 0), MCR_OK);
  assert_rc(mcr_client_verbosity(fx_client, 0, 0), MCR_OK);
  assert_rc(mcr_client_verbosity(fx_client, 0, MCR_CALL_NOREPLY), MCR_OK);
  cl_set(fx_client, "after", "ok");
  cl_expect(fx_client, "after", "ok");
}

Test(client, cache_memlimit) {
  assert_rc(mcr_client_cache_memlimit(fx_client, 100, 0), MCR_OK);
  const mcr_stat_t* s = NULL;
  int n = t_stats_node(fx_client, 0, "settings", &s);
  cr_assert_str_eq(stat_find(s, n, "maxbytes"), "104857600");
  /* memcached refuses less than 8 MiB with a reply of its own kind; any
   * error will do, and the connection must stay in sync. */
  int rc = mcr_client_cache_memlimit(fx_client, 1, 0);
  cr_assert_lt(rc, 0, "memlimit 1: %d", rc);
  n = t_stats_node(fx_client, 0, "settings", &s);
  cr_assert_str_eq(stat_find(s, n, "maxbytes"), "104857600");
}

Test(client, quit_then_reuse) {
  cl_set(fx_client, "q", "1");
  uint64_t before = cl_stats(fx_client).reconnects;
  uint64_t conns = mcd_stat(&fx_mcd, "total_connections");
  cr_assert_eq(mcr_client_quit(fx_client), 0);
  cr_assert_eq(mcr_client_quit(fx_client), 0, "quit with nothing connected");
  cl_expect(fx_client, "q", "1");
  cr_assert_eq(cl_stats(fx_client).reconnects, before + 1);
  cr_assert_eq(mcd_stat(&fx_mcd, "total_connections"), conns + 2,
               "one new connection from the client, one from mcd_stat");
}

/* ---------------------------------------------------------------- noreply */

Test(client, noreply_per_call) {
  const unsigned NR = MCR_CALL_NOREPLY;
  assert_rc(mcr_client_set(fx_client, K("n"), V("1"), 0, 0, NR), MCR_OK);
  /* A refused add still reports MCR_OK: nothing was read. */
  assert_rc(mcr_client_add(fx_client, K("n"), V("2"), 0, 0, NR), MCR_OK);
  assert_rc(mcr_client_replace(fx_client, K("n"), V("3"), 0, 0, NR), MCR_OK);
  assert_rc(mcr_client_append(fx_client, K("n"), V("4"), NR), MCR_OK);
  assert_rc(mcr_client_prepend(fx_client, K("n"), V("0"), NR), MCR_OK);
  uint64_t v = 999;
  assert_rc(mcr_client_incr(fx_client, K("n"), 1, &v, NR), MCR_OK);
  assert_rc(mcr_client_decr(fx_client, K("n"), 2, &v, NR), MCR_OK);
  assert_rc(mcr_client_touch(fx_client, K("n"), 100, NR), MCR_OK);
  assert_rc(mcr_client_cas(fx_client, K("n"), V("c"), 0, 0, 1, NR), MCR_OK);
  /* The replies the server did not send cannot desync the stream:
   * "3", "34", "034", 35, 33, and the cas with a wrong unique failed. */
  expect_number("n", "33");
  cr_assert_eq(raw_ttl(&fx_mcd, "n") > 0, true);
  assert_rc(mcr_client_delete(fx_client, K("n"), NR), MCR_OK);
  cl_expect_miss(fx_client, "n");
  assert_rc(mcr_client_flush_all(fx_client, 0, NR), MCR_OK);
  assert_rc(mcr_client_verbosity(fx_client, 0, NR), MCR_OK);
  cl_expect_miss(fx_client, "n");
  cr_assert_eq(mcd_stat(&fx_mcd, "cmd_flush"), 1);
}

Test(client, noreply_client_default) {
  mcr_client_opts_t o = opts_default();
  o.noreply = 1;
  mcr_client_t* c = client_new(fx_mcd.servers, &o);
  assert_rc(mcr_client_set(c, K("d"), V("1"), 0, 0, 0), MCR_OK);
  assert_rc(mcr_client_add(c, K("d"), V("2"), 0, 0, 0), MCR_OK);
  /* MCR_CALL_REPLY overrides the default: the refusal is visible. */
  assert_rc(mcr_client_add(c, K("d"), V("2"), 0, 0, MCR_CALL_REPLY),
            MCR_NOT_STORED);
  assert_rc(mcr_client_delete(c, K("zz"), MCR_CALL_REPLY), MCR_NOT_FOUND);
  uint64_t v = 0;
  cl_set(c, "num", "5");
  assert_rc(mcr_client_incr(c, K("num"), 2, &v, MCR_CALL_REPLY), MCR_OK);
  cr_assert_eq(v, 7);
  cl_expect(c, "d", "1");
  cl_expect(fx_client, "d", "1");
  mcr_client_free(c);
}

/* ---------------------------------------------------------------- values */

static char* pattern(size_t n) {
  char* p = malloc(n ? n : 1);
  cr_assert_not_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = (char)('a' + (i * 7 + i / 13) % 26);
  return p;
}

Test(client_own, item_size_limit_client_side) {
  /* The server takes 2 MiB items, the client's limit is the default 1 MiB:
   * the client's own check decides. */
  const char* const extra[] = {"-I", "2m", NULL};
  mcd_start(&fx_mcd, &(mcd_opts_t){.extra = extra});
  fx_client = client_new(fx_mcd.servers, NULL);
  size_t max = (size_t)1 << 20;
  char* big = pattern(max + 1);
  assert_rc(mcr_client_set(fx_client, K("big"), big, max, 0, 0, 0), MCR_OK);
  mcr_item_t item;
  assert_rc(mcr_client_get(fx_client, K("big"), &item), MCR_OK);
  assert_value(item, big, max);
  uint64_t sets = mcd_stat(&fx_mcd, "cmd_set");
  assert_rc(mcr_client_set(fx_client, K("big2"), big, max + 1, 0, 0, 0),
            MCR_ETOOBIG);
  assert_rc(mcr_client_add(fx_client, K("big2"), big, max + 1, 0, 0, 0),
            MCR_ETOOBIG);
  assert_rc(mcr_client_append(fx_client, K("big"), big, max + 1, 0),
            MCR_ETOOBIG);
  assert_rc(mcr_client_set(fx_client, K("big2"), big, max + 1, 0, 0,
                           MCR_CALL_NOREPLY),
            MCR_ETOOBIG);
  cr_assert_eq(mcd_stat(&fx_mcd, "cmd_set"), sets, "a too-big value was sent");
  cl_expect_miss(fx_client, "big2");
  /* A configured limit applies the same way. */
  mcr_client_opts_t o = opts_default();
  o.item_size_max = 100;
  mcr_client_t* c = client_new(fx_mcd.servers, &o);
  assert_rc(mcr_client_set(c, K("s"), big, 100, 0, 0, 0), MCR_OK);
  assert_rc(mcr_client_set(c, K("s"), big, 101, 0, 0, 0), MCR_ETOOBIG);
  mcr_client_free(c);
  free(big);
}

/* A client that allows 2 MiB values, more than memcached's default -I. */
static mcr_client_t* big_item_client(bool ignore_errors) {
  mcr_client_opts_t o = opts_default();
  o.item_size_max = (size_t)2 << 20;
  o.ignore_errors = ignore_errors;
  return client_new(fx_mcd.servers, &o);
}

Test(client, item_too_big_for_the_server) {
  /* The client allows 2 MiB, the server only 1 MiB: the server's
   * SERVER_ERROR is reported with its text, and the stream stays usable. */
  mcr_client_t* c = big_item_client(false);
  size_t n = (size_t)3 << 19;
  char* big = pattern(n);
  assert_rc(mcr_client_set(c, K("big"), big, n, 0, 0, 0), MCR_ESERVERERR);
  const char* err = mcr_client_last_error(c);
  cr_assert(strstr(err, "too large") != NULL, "last error: %s", err);
  cl_set(c, "small", "ok");
  cl_expect(c, "small", "ok");
  mcr_client_free(c);
  free(big);
}

Test(client, binary_value) {
  static const char bin[] = "a\r\nEND\r\n\0VALUE x 0 1\r\n\r\n\xff\x00\x80z";
  size_t len = sizeof bin - 1;
  assert_rc(mcr_client_set(fx_client, K("bin"), bin, len, 1, 0, 0), MCR_OK);
  mcr_item_t item;
  assert_rc(mcr_client_get(fx_client, K("bin"), &item), MCR_OK);
  assert_value(item, bin, len);
  char raw[64];
  size_t rl;
  uint32_t flags;
  cr_assert(raw_get(&fx_mcd, "bin", raw, sizeof raw, &rl, &flags));
  cr_assert_eq(rl, len);
  cr_assert(memcmp(raw, bin, len) == 0);
  /* And inside a multi-key reply, between two other items. */
  cl_set(fx_client, "b0", "x");
  cl_set(fx_client, "b2", "y");
  const char* keys[] = {"b0", "bin", "b2"};
  size_t lens[] = {2, 3, 2};
  mcr_item_t items[3];
  cr_assert_eq(t_get_multi(fx_client, 3, keys, lens, items), 3);
  assert_value(items[1], bin, len);
  assert_value(items[2], "y", 1);
}

Test(client, empty_value) {
  assert_rc(mcr_client_set(fx_client, K("e"), "", 0, 3, 0, 0), MCR_OK);
  mcr_item_t item;
  assert_rc(mcr_client_get(fx_client, K("e"), &item), MCR_OK);
  cr_assert_eq(item.value_len, 0);
  cr_assert_eq(item.flags, 3);
  assert_rc(mcr_client_set(fx_client, K("e2"), NULL, 0, 0, 0, 0), MCR_OK);
  assert_rc(mcr_client_get(fx_client, K("e2"), &item), MCR_OK);
  cr_assert_eq(item.value_len, 0);
}

/* ---------------------------------------------------------------- zstd */

static mcr_client_t* compressing_client(size_t threshold) {
  mcr_client_opts_t o = opts_default();
  o.compress_threshold = threshold;
  return client_new(fx_mcd.servers, &o);
}

Test(client, compression_round_trip) {
  mcr_client_t* c = compressing_client(1000);
  size_t n = 50000;
  char* v = pattern(n);
  assert_rc(mcr_client_set(c, K("z"), v, n, 0x5, 0, 0), MCR_OK);
  /* On the server: a shorter zstd frame with the flag bit. */
  char* raw = malloc(n);
  size_t rl;
  uint32_t flags;
  cr_assert(raw_get(&fx_mcd, "z", raw, n, &rl, &flags));
  cr_assert_eq(flags, 0x5 | MCR_FLAG_ZSTD);
  cr_assert_lt(rl, n / 2);
  cr_assert(memcmp(raw, "\x28\xb5\x2f\xfd", 4) == 0, "zstd frame magic");
  /* To the caller: the value and its own flags. */
  mcr_item_t item;
  assert_rc(mcr_client_get(c, K("z"), &item), MCR_OK);
  assert_value(item, v, n);
  cr_assert_eq(item.flags, 0x5);
  cr_assert_eq(cl_stats(c).compressed, 1);
  /* A client without compression still reads it (the flag decides). */
  assert_rc(mcr_client_get(fx_client, K("z"), &item), MCR_OK);
  assert_value(item, v, n);
  cr_assert_eq(item.flags, 0x5);
  /* Raw bytes from another client, flag set: decompressed too. */
  raw_set(&fx_mcd, "other", raw, rl, MCR_FLAG_ZSTD | 0x10);
  assert_rc(mcr_client_get(c, K("other"), &item), MCR_OK);
  assert_value(item, v, n);
  cr_assert_eq(item.flags, 0x10);
  free(raw);
  free(v);
  mcr_client_free(c);
}

Test(client, compression_threshold_and_incompressible) {
  mcr_client_t* c = compressing_client(1000);
  char* v = pattern(999);
  assert_rc(mcr_client_set(c, K("small"), v, 999, 0, 0, 0), MCR_OK);
  char raw[4096];
  size_t rl;
  uint32_t flags;
  cr_assert(raw_get(&fx_mcd, "small", raw, sizeof raw, &rl, &flags));
  cr_assert_eq(flags, 0, "below the threshold: raw bytes");
  cr_assert_eq(rl, 999);
  /* Random bytes do not shrink: stored raw, no flag. */
  unsigned char rnd[4000];
  srand(1);
  for (size_t i = 0; i < sizeof rnd; i++)
    rnd[i] = (unsigned char)rand();
  assert_rc(mcr_client_set(c, K("rnd"), rnd, sizeof rnd, 0, 0, 0), MCR_OK);
  cr_assert(raw_get(&fx_mcd, "rnd", raw, sizeof raw, &rl, &flags));
  cr_assert_eq(flags, 0);
  cr_assert_eq(rl, sizeof rnd);
  cr_assert(memcmp(raw, rnd, sizeof rnd) == 0);
  cr_assert_eq(cl_stats(c).compressed, 0);
  free(v);
  mcr_client_free(c);
}

Test(client, compression_in_multi_get) {
  mcr_client_t* c = compressing_client(100);
  char* a = pattern(5000);
  char* b = pattern(7000);
  b[0] = 'B';
  assert_rc(mcr_client_set(c, K("ca"), a, 5000, 0, 0, 0), MCR_OK);
  assert_rc(mcr_client_set(c, K("cb"), b, 7000, 0, 0, 0), MCR_OK);
  const char* keys[] = {"ca", "cx", "cb"};
  size_t lens[] = {2, 2, 2};
  mcr_item_t items[3];
  cr_assert_eq(t_get_multi(c, 3, keys, lens, items), 2);
  /* Both decompressed values are valid at once. */
  assert_value(items[0], a, 5000);
  assert_value(items[2], b, 7000);
  cr_assert_eq(items[0].flags, 0);
  free(a);
  free(b);
  mcr_client_free(c);
}

Test(client, corrupt_compressed_value) {
  raw_set(&fx_mcd, "bad", "not a zstd frame", 16, MCR_FLAG_ZSTD);
  mcr_item_t item;
  assert_rc(mcr_client_get(fx_client, K("bad"), &item), MCR_ECOMPRESS);
  cl_set(fx_client, "fine", "1");
  cl_expect(fx_client, "fine", "1");
}

Test(client, raw_flags_pass_bit_0x100_through) {
  /* Another client's value with bit 8 set in its own flag scheme. */
  raw_set(&fx_mcd, "theirs", "not a zstd frame", 16, MCR_FLAG_ZSTD | 0x2);
  mcr_client_opts_t o = opts_default();
  o.raw_flags = 1;
  mcr_client_t* c = client_new(fx_mcd.servers, &o);
  mcr_item_t item;
  assert_rc(mcr_client_get(c, K("theirs"), &item), MCR_OK);
  assert_value(item, "not a zstd frame", 16);
  cr_assert_eq(item.flags, MCR_FLAG_ZSTD | 0x2);
  /* And stores it: read back with a plain text get. */
  assert_rc(mcr_client_set(c, K("mine"), "v", 1, MCR_FLAG_ZSTD, 0, 0), MCR_OK);
  char got[8];
  size_t len = 0;
  uint32_t flags = 0;
  cr_assert(raw_get(&fx_mcd, "mine", got, sizeof got, &len, &flags));
  cr_assert_eq(len, 1);
  cr_assert_eq(got[0], 'v');
  cr_assert_eq(flags, MCR_FLAG_ZSTD);
  mcr_client_free(c);
  /* The default client refuses the bit on the way in. */
  assert_rc(mcr_client_set(fx_client, K("x"), "v", 1, MCR_FLAG_ZSTD, 0, 0),
            MCR_EINVAL);
  /* raw_flags with compression is a contradiction. */
  o.compress_threshold = 100;
  char err[256];
  assert_rc(mcr_client_new(&c, &o, err, sizeof err), MCR_EINVAL);
  cr_assert(strstr(err, "raw_flags"), "%s", err);
}

/* ---------------------------------------------------------------- serde */

#define SERDE_FLAG 0x40000u

typedef struct {
  int encodes, decodes;
  int fail_encode;
} serde_state_t;

static int wrap_encode(void* ud, const void* in, size_t in_len, uint32_t* flags,
                       mcr_buf_t* out) {
  serde_state_t* st = ud;
  st->encodes++;
  if (st->fail_encode)
    return -1;
  *flags |= SERDE_FLAG;
  if (mcr_buf_append(out, "<", 1) != 0)
    return -1;
  if (mcr_buf_append(out, in, in_len) != 0)
    return -1;
  return mcr_buf_append(out, ">", 1);
}

static int wrap_decode(void* ud, const void* in, size_t in_len, uint32_t flags,
                       mcr_buf_t* out) {
  serde_state_t* st = ud;
  st->decodes++;
  const char* p = in;
  if (!(flags & SERDE_FLAG) || in_len < 2 || p[0] != '<' ||
      p[in_len - 1] != '>')
    return -7;
  return mcr_buf_append(out, p + 1, in_len - 2);
}

static serde_state_t serde_st;
static const mcr_serde_t wrap_serde = {wrap_encode, wrap_decode, &serde_st};

static mcr_client_t* serde_client(size_t threshold) {
  mcr_client_opts_t o = opts_default();
  o.serde = &wrap_serde;
  o.compress_threshold = threshold;
  return client_new(fx_mcd.servers, &o);
}

Test(client, serde_round_trip) {
  mcr_client_t* c = serde_client(0);
  assert_rc(mcr_client_set(c, K("s"), V("abc"), 3, 0, 0), MCR_OK);
  cr_assert_eq(serde_st.encodes, 1);
  char raw[16];
  size_t rl;
  uint32_t flags;
  cr_assert(raw_get(&fx_mcd, "s", raw, sizeof raw, &rl, &flags));
  cr_assert_eq(rl, 5);
  cr_assert(memcmp(raw, "<abc>", 5) == 0);
  cr_assert_eq(flags, SERDE_FLAG | 3);
  mcr_item_t item;
  assert_rc(mcr_client_get(c, K("s"), &item), MCR_OK);
  assert_value(item, "abc", 3);
  cr_assert_eq(item.flags, SERDE_FLAG | 3);
  cr_assert_eq(serde_st.decodes, 1);
  /* append sends raw bytes, bypassing the serializer. */
  assert_rc(mcr_client_append(c, K("s"), V("!"), 0), MCR_OK);
  cr_assert_eq(serde_st.encodes, 1);
  cr_assert(raw_get(&fx_mcd, "s", raw, sizeof raw, &rl, &flags));
  cr_assert_eq(rl, 6);
  cr_assert(memcmp(raw, "<abc>!", 6) == 0);
  mcr_client_free(c);
}

Test(client, serde_with_compression) {
  mcr_client_t* c = serde_client(100);
  char* v = pattern(10000);
  assert_rc(mcr_client_set(c, K("sz"), v, 10000, 0, 0, 0), MCR_OK);
  char* raw = malloc(10002);
  size_t rl;
  uint32_t flags;
  cr_assert(raw_get(&fx_mcd, "sz", raw, 10002, &rl, &flags));
  cr_assert_eq(flags, SERDE_FLAG | MCR_FLAG_ZSTD);
  cr_assert_lt(rl, 5000);
  mcr_item_t item;
  assert_rc(mcr_client_get(c, K("sz"), &item), MCR_OK);
  assert_value(item, v, 10000);
  cr_assert_eq(item.flags, SERDE_FLAG);
  free(raw);
  free(v);
  mcr_client_free(c);
}

Test(client, serde_failures) {
  mcr_client_t* c = serde_client(0);
  serde_st.fail_encode = 1;
  uint64_t sets = mcd_stat(&fx_mcd, "cmd_set");
  assert_rc(mcr_client_set(c, K("f"), V("abc"), 0, 0, 0), MCR_ESERDE);
  assert_rc(mcr_client_add(c, K("f"), V("abc"), 0, 0, 0), MCR_ESERDE);
  assert_rc(mcr_client_set(c, K("f"), V("abc"), 0, 0, MCR_CALL_NOREPLY),
            MCR_ESERDE);
  cr_assert_eq(mcd_stat(&fx_mcd, "cmd_set"), sets, "a failed encode was sent");
  serde_st.fail_encode = 0;
  /* Bytes the decoder does not accept: the read fails, the stream does
   * not. */
  raw_set(&fx_mcd, "foreign", "plain", 5, 0);
  mcr_item_t item;
  assert_rc(mcr_client_get(c, K("foreign"), &item), MCR_ESERDE);
  assert_rc(mcr_client_set(c, K("f"), V("ok"), 0, 0, 0), MCR_OK);
  assert_rc(mcr_client_get(c, K("f"), &item), MCR_OK);
  assert_value(item, "ok", 2);
  mcr_client_free(c);
}

/* ---------------------------------------------------------------- errors */

Test(client, server_gone_is_an_error) {
  cl_set(fx_client, "k", "v");
  mcd_stop(&fx_mcd);
  mcr_item_t item;
  int rc = mcr_client_get(fx_client, K("k"), &item);
  cr_assert(rc == MCR_ECLOSED || rc == MCR_ECONNECT || rc == MCR_EIO,
            "get: %d %s", rc, mcr_err_name(rc));
  assert_rc(mcr_client_get(fx_client, K("k"), &item), MCR_ECONNECT);
  /* Two failures in a row (failure_limit): the node is down, calls fail
   * fast without a connect. */
  assert_rc(mcr_client_set(fx_client, K("k"), V("v"), 0, 0, 0), MCR_ENODEDOWN);
  cr_assert(strstr(mcr_client_last_error(fx_client), fx_mcd.servers) != NULL,
            "last error names the node: %s", mcr_client_last_error(fx_client));
}

/* An ignore_errors client that stored "k" on a server that is then
 * stopped; nothing has been ignored yet. */
static mcr_client_t* ignoring_client_of_a_dead_server(void) {
  mcr_client_opts_t o = opts_default();
  o.ignore_errors = 1;
  mcr_client_t* c = client_new(fx_mcd.servers, &o);
  cl_set(c, "k", "v");
  cl_expect(c, "k", "v");
  cr_assert_eq(cl_stats(c).ignored_errors, 0);
  mcd_stop(&fx_mcd);
  return c;
}

Test(client, ignore_errors) {
  mcr_client_t* c = ignoring_client_of_a_dead_server();
  mcr_item_t item;
  assert_rc(mcr_client_get(c, K("k"), &item), MCR_MISS);
  assert_rc(mcr_client_set(c, K("k"), V("v"), 0, 0, 0), MCR_NOT_STORED);
  assert_rc(mcr_client_gets(c, K("k"), &item), MCR_MISS);
  cr_assert_eq(cl_stats(c).ignored_errors, 3);
  /* Validation errors are still errors, and not counted. */
  assert_rc(mcr_client_get(c, K("a b"), &item), MCR_EKEY);
  cr_assert_eq(cl_stats(c).ignored_errors, 3);
  mcr_client_free(c);
}

Test(client, ignore_errors_other_calls) {
  /* Every kind of call on a dead node: reads are misses (multi-key ones
   * per key), writes are not stored; each one counted. */
  mcr_client_t* c = ignoring_client_of_a_dead_server();
  const char* keys[] = {"k", "j"};
  size_t lens[] = {1, 1};
  mcr_item_t items[2];
  cr_assert_eq(t_get_multi(c, 2, keys, lens, items), 0);
  assert_rc(items[0].status, MCR_MISS);
  assert_rc(items[1].status, MCR_MISS);
  mcr_item_t item;
  assert_rc(mcr_client_gat(c, K("k"), 10, &item), MCR_MISS);
  assert_rc(mcr_client_add(c, K("k"), V("v"), 0, 0, 0), MCR_NOT_STORED);
  assert_rc(mcr_client_append(c, K("k"), V("v"), 0), MCR_NOT_STORED);
  assert_rc(mcr_client_cas(c, K("k"), V("v"), 0, 0, 1, 0), MCR_NOT_STORED);
  cr_assert_eq(cl_stats(c).ignored_errors, 6);
  mcr_client_free(c);
}

Test(client, ignore_errors_server_error) {
  /* SERVER_ERROR on a write becomes NOT_STORED too. */
  mcr_client_t* c = big_item_client(true);
  size_t n = (size_t)3 << 19;
  char* big = pattern(n);
  assert_rc(mcr_client_set(c, K("big"), big, n, 0, 0, 0), MCR_NOT_STORED);
  cr_assert_eq(cl_stats(c).ignored_errors, 1);
  free(big);
  mcr_client_free(c);
}

/* ---------------------------------------------------------------- transports
 */

Test(client_own, unix_socket) {
  mcd_start(&fx_mcd, &(mcd_opts_t){.unix_socket = true});
  fx_client = client_new(fx_mcd.servers, NULL);
  cr_assert_str_eq(mcr_client_node_name(fx_client, 0), fx_mcd.path);
  cl_set(fx_client, "u", "over unix");
  cl_expect(fx_client, "u", "over unix");
  char unixed[160];
  snprintf(unixed, sizeof unixed, "unix:%s", fx_mcd.path);
  mcr_client_t* c = client_new(unixed, NULL);
  cl_expect(c, "u", "over unix");
  mcr_client_free(c);
}

Test(client_own, ipv6_loopback) {
  if (!mcd_have_ipv6())
    cr_skip_test("the kernel has no IPv6 loopback");
  mcd_start(&fx_mcd, &(mcd_opts_t){.ipv6 = true});
  fx_client = client_new(fx_mcd.servers, NULL);
  cl_set(fx_client, "six", "v6");
  cl_expect(fx_client, "six", "v6");
  cr_assert(raw_has(&fx_mcd, "six"));
}

Test(client, host_name_resolution) {
  char servers[64];
  snprintf(servers, sizeof servers, "localhost:%d", fx_mcd.port);
  mcr_client_t* c = client_new(servers, NULL);
  cl_set(c, "named", "yes");
  cl_expect(fx_client, "named", "yes");
  mcr_client_free(c);
}

Test(client, reconnect_after_restart) {
  cl_set(fx_client, "k", "v");
  cr_assert_eq(cl_stats(fx_client).reconnects, 0);
  mcd_restart(&fx_mcd);
  /* The old connection is dead; the next call notices and reconnects. The
   * restarted server is empty. */
  cl_expect_miss(fx_client, "k");
  cl_set(fx_client, "k", "v2");
  cl_expect(fx_client, "k", "v2");
  cr_assert_eq(cl_stats(fx_client).reconnects, 1);
}

/* A client with `io_timeout_ms` (and items up to item_size_max, when not
 * 0) that stored p=1 before the server was paused. */
static mcr_client_t* client_of_a_paused_server(int io_timeout_ms,
                                               size_t item_size_max) {
  mcr_client_opts_t o = opts_default();
  o.io_timeout_ms = io_timeout_ms;
  if (item_size_max)
    o.item_size_max = item_size_max;
  mcr_client_t* c = client_new(fx_mcd.servers, &o);
  cl_set(c, "p", "1");
  mcd_pause(&fx_mcd);
  return c;
}

/* Resumes the server, expects p=1 through c again, and frees c. */
static void resume_and_expect_p(mcr_client_t* c) {
  mcd_resume(&fx_mcd);
  cl_expect(c, "p", "1");
  mcr_client_free(c);
}

Test(client, big_write_to_a_paused_server_times_out) {
  /* The request itself may not fit in the socket buffers: sending is
   * bounded by the I/O timeout too. */
  mcr_client_t* c = client_of_a_paused_server(300, (size_t)16 << 20);
  size_t n = (size_t)16 << 20;
  char* big = pattern(n);
  int64_t t0 = now_ms();
  assert_rc(mcr_client_set(c, K("big"), big, n, 0, 0, 0), MCR_ETIMEOUT);
  int64_t ms = now_ms() - t0;
  cr_assert(ms >= 295 && ms <= 300 + TEST_SLACK_MS, "took %lld ms",
            (long long)ms);
  free(big);
  resume_and_expect_p(c);
}

Test(client, keepalive_option) {
  mcr_client_opts_t o = opts_default();
  o.tcp_keepalive = 1;
  mcr_client_t* c = client_new(fx_mcd.servers, &o);
  cl_set(c, "ka", "1");
  cl_expect(c, "ka", "1");
  mcr_client_free(c);
}

Test(client, missing_unix_socket_is_refused) {
  mcr_client_t* c = client_new("/tmp/mcr-test-no-such.sock", NULL);
  mcr_item_t item;
  assert_rc(mcr_client_get(c, K("k"), &item), MCR_ECONNECT);
  mcr_client_free(c);
}

Test(client, paused_server_times_out_then_recovers) {
  mcr_client_t* c = client_of_a_paused_server(200, 0);
  mcr_item_t item;
  assert_rc(mcr_client_get(c, K("p"), &item), MCR_ETIMEOUT);
  resume_and_expect_p(c);
}

/* An allocator that fails its `fail_at`-th call (counting from 0). */
static long alloc_calls, fail_at = -1;
static bool fail_now(void) {
  return alloc_calls++ == fail_at;
}
static void* f_malloc(size_t n) {
  return fail_now() ? NULL : malloc(n);
}
static void* f_realloc(void* p, size_t n) {
  return fail_now() ? NULL : realloc(p, n);
}
static void* f_calloc(size_t n, size_t s) {
  return fail_now() ? NULL : calloc(n, s);
}

/* mcr_client_new with every one of its allocations failing in turn, the
 * TLS context included: each attempt either makes a client or fails with a
 * negative code and no client, never "succeeds" without one. The TLS
 * context needs no server; the node's name is never resolved. */
Test(client, new_fails_cleanly_at_every_allocation, .timeout = 240) {
  cr_assert_eq(mcr_replace_allocator(f_malloc, f_realloc, f_calloc, free), 0);
  mcr_client_opts_t o = opts_default();
  o.servers = "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3";
  o.tls.enable = 1;
  int failed = 0;
  for (fail_at = 0;; fail_at++) {
    alloc_calls = 0;
    mcr_client_t* c = NULL;
    char err[256] = "";
    int rc = mcr_client_new(&c, &o, err, sizeof err);
    if (rc == 0) {
      cr_assert_not_null(c, "allocation %ld failed: rc 0 and no client",
                         fail_at);
      mcr_client_free(c);
    } else {
      cr_assert_lt(rc, 0);
      cr_assert_null(c);
      cr_assert(err[0], "allocation %ld failed without a message", fail_at);
      failed++;
    }
    if (alloc_calls <= fail_at)
      break; /* no allocation left to fail */
  }
  cr_assert_gt(failed, 3, "only %d allocations tried", failed);
}
