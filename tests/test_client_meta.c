/* test_client_meta.c — the meta API (mg ms md ma mn me) and quiet pipelines
 * against a real memcached, plus scripted fake servers for what a real one
 * never does (garbage, stray opaques, no meta support).
 *
 * Each test gets its own memcached (Criterion forks per test, so the init
 * fixture runs in the test's own process). What the library reports is
 * checked against the server through a raw text connection where the
 * library could fool itself: base64 keys are read back under their raw
 * name, ms bytes and flags are read back with a plain get, and rejected
 * calls are shown to send nothing (a fake server that counts bytes).
 *
 * Covered: every flag of mg / ms / md / ma the header offers with each
 * outcome code, t = -1 for no expiry, modes, cas compare, the stampede
 * flow (vivify win / won-already, md I stale, ms I with an old cas, R
 * recache), q on single commands, opaques, base64 binary keys, the
 * validation table, the item size limit, pipelines (implied statuses, error
 * lines charged to the right command, many and large commands, several
 * nodes with one failing, timeouts, ignore_errors) and protocol violations
 * followed by a working next call.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "internal.h" /* mcr__route: which node a key lives on */
#include "support.h"

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

#define K(s) (s), strlen(s)
#define V(s) (s), strlen(s)

TestSuite(meta, .init = setup, .fini = teardown, .timeout = 60);
/* Tests that build their own servers and client. */
TestSuite(meta_own, .fini = teardown, .timeout = 60);

static mcr_meta_opts_t opts(uint32_t flags) {
  mcr_meta_opts_t o;
  memset(&o, 0, sizeof o);
  o.flags = flags;
  return o;
}

#define assert_bytes(ptr, len, want)                                          \
  do {                                                                        \
    cr_assert_eq((len), strlen(want), "length %zu, want %zu", (size_t)(len),  \
                 strlen(want));                                               \
    cr_assert(memcmp((ptr), (want), (len)) == 0, "%.*s, want %s", (int)(len), \
              (ptr), (want));                                                 \
  } while (0)

/* Default options, for a test to change before reopen(). */
static mcr_client_opts_t reopen_opts(void) {
  mcr_client_opts_t co;
  mcr_client_opts_init(&co);
  return co;
}

/* Replaces the fixture's client with one made with `co`. */
static void reopen(const mcr_client_opts_t* co) {
  mcr_client_free(client);
  client = client_new(mcd.servers, co);
}

/* Asserts each command's status against want[]. */
static void assert_statuses(const mcr_meta_cmd_t* cmds, size_t n,
                            const int* want) {
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(
        cmds[i].result.status, want[i], "cmd %zu: %s want %s", i,
        cmds[i].result.status < 0 ? mcr_err_name(cmds[i].result.status)
                                  : mcr_status_name(cmds[i].result.status),
        want[i] < 0 ? mcr_err_name(want[i]) : mcr_status_name(want[i]));
}

/* ---------------------------------------------------------------- mg / ms */

Test(meta, ms_then_mg_returns_every_field) {
  mcr_meta_opts_t o =
      opts(MCR_META_SET_FLAGS | MCR_META_TTL | MCR_META_RET_CAS |
           MCR_META_RET_KEY | MCR_META_OPAQUE);
  o.client_flags = 0xdeadbeef;
  o.ttl = 100;
  o.opaque = 4000000000u;
  mcr_meta_result_t r;
  assert_rc(mcr_client_ms(client, K("mk"), V("hello"), &o, &r), MCR_OK);
  cr_assert_eq(r.status, MCR_OK);
  cr_assert(r.have & MCR_MR_CAS);
  cr_assert_neq(r.cas, 0);
  cr_assert(r.have & MCR_MR_OPAQUE);
  cr_assert_eq(r.opaque, 4000000000u);
  cr_assert(r.have & MCR_MR_KEY);
  assert_bytes(r.key, r.key_len, "mk");
  uint64_t cas = r.cas;

  o = opts(MCR_META_VALUE | MCR_META_RET_CAS | MCR_META_RET_FLAGS |
           MCR_META_RET_TTL | MCR_META_RET_SIZE | MCR_META_RET_KEY |
           MCR_META_RET_HIT | MCR_META_RET_LAST | MCR_META_OPAQUE);
  o.opaque = 7;
  assert_rc(mcr_client_mg(client, K("mk"), &o, &r), MCR_OK);
  uint32_t want = MCR_MR_VALUE | MCR_MR_CAS | MCR_MR_FLAGS | MCR_MR_TTL |
                  MCR_MR_SIZE | MCR_MR_KEY | MCR_MR_HIT | MCR_MR_LAST |
                  MCR_MR_OPAQUE;
  cr_assert_eq(r.have, want, "have 0x%x want 0x%x", r.have, want);
  assert_bytes(r.value, r.value_len, "hello");
  cr_assert_eq(r.cas, cas);
  cr_assert_eq(r.client_flags, 0xdeadbeef);
  cr_assert(r.ttl > 90 && r.ttl <= 100, "ttl %lld", (long long)r.ttl);
  cr_assert_eq(r.size, 5);
  assert_bytes(r.key, r.key_len, "mk");
  cr_assert_eq(r.hit, 0, "first fetch: not hit before");
  cr_assert_eq(r.opaque, 7);
  cr_assert(!r.win && !r.stale && !r.won_already);

  /* Hit before: now 1. */
  assert_rc(mcr_client_mg(client, K("mk"), &o, &r), MCR_OK);
  cr_assert_eq(r.hit, 1);
}

Test(meta, mg_without_value_is_hd_and_miss_is_en) {
  assert_rc(mcr_client_ms(client, K("a"), V("1"), NULL, NULL), MCR_OK);
  mcr_meta_result_t r;
  mcr_meta_opts_t o = opts(MCR_META_RET_FLAGS);
  assert_rc(mcr_client_mg(client, K("a"), &o, &r), MCR_OK);
  cr_assert_eq(r.have, MCR_MR_FLAGS);
  cr_assert_null(r.value);
  assert_rc(mcr_client_mg(client, K("missing"), &o, &r), MCR_MISS);
  cr_assert_eq(r.status, MCR_MISS);
  cr_assert_eq(r.have, 0);
  /* NULL opts and result are allowed. */
  assert_rc(mcr_client_mg(client, K("a"), NULL, NULL), MCR_OK);
  assert_rc(mcr_client_mg(client, K("missing"), NULL, NULL), MCR_MISS);
}

Test(meta, ttl_minus_one_means_no_expiry) {
  assert_rc(mcr_client_ms(client, K("forever"), V("x"), NULL, NULL), MCR_OK);
  mcr_meta_opts_t o = opts(MCR_META_RET_TTL);
  mcr_meta_result_t r;
  assert_rc(mcr_client_mg(client, K("forever"), &o, &r), MCR_OK);
  cr_assert(r.have & MCR_MR_TTL);
  cr_assert_eq(r.ttl, -1);
  /* T on mg updates the TTL, like gat. */
  o = opts(MCR_META_RET_TTL | MCR_META_TTL);
  o.ttl = 500;
  assert_rc(mcr_client_mg(client, K("forever"), &o, &r), MCR_OK);
  int64_t ttl = raw_ttl(&mcd, "forever");
  cr_assert(ttl > 490 && ttl <= 500, "ttl %lld", (long long)ttl);
}

Test(meta, ms_modes) {
  /* Each row: ms in `mode`, the result it must give, then (when `holds`
   * is set) what the key must hold. */
  static const struct {
    char mode;
    const char *key, *value;
    int want;
    const char* holds;
  } steps[] = {
      {MCR_MS_ADD, "m", "b", MCR_OK, NULL},
      {MCR_MS_ADD, "m", "x", MCR_NOT_STORED, NULL},
      {MCR_MS_APPEND, "m", "c", MCR_OK, NULL},
      {MCR_MS_PREPEND, "m", "a", MCR_OK, "abc"},
      {MCR_MS_REPLACE, "m", "r", MCR_OK, "r"},
      {MCR_MS_REPLACE, "none", "r", MCR_NOT_STORED, NULL},
      {MCR_MS_APPEND, "none", "r", MCR_NOT_STORED, NULL},
      {MCR_MS_SET, "none", "s", MCR_OK, "s"},
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    mcr_meta_opts_t o = opts(MCR_META_MODE);
    o.mode = steps[i].mode;
    int rc =
        mcr_client_ms(client, K(steps[i].key), V(steps[i].value), &o, NULL);
    cr_assert_eq(rc, steps[i].want, "step %zu (ms %s M%c): got %d want %d", i,
                 steps[i].key, steps[i].mode, rc, steps[i].want);
    if (steps[i].holds)
      cl_expect(client, steps[i].key, steps[i].holds);
  }
}

Test(meta, ms_compare_cas) {
  mcr_meta_opts_t o = opts(MCR_META_RET_CAS);
  mcr_meta_result_t r;
  assert_rc(mcr_client_ms(client, K("c"), V("1"), &o, &r), MCR_OK);
  uint64_t cas = r.cas;
  o = opts(MCR_META_COMPARE_CAS);
  o.cas = cas + 1000;
  assert_rc(mcr_client_ms(client, K("c"), V("2"), &o, &r), MCR_EXISTS);
  cr_assert_eq(r.status, MCR_EXISTS);
  o.cas = cas;
  assert_rc(mcr_client_ms(client, K("c"), V("3"), &o, &r), MCR_OK);
  cl_expect(client, "c", "3");
  assert_rc(mcr_client_ms(client, K("gone"), V("3"), &o, &r), MCR_NOT_FOUND);
}

Test(meta, ms_stores_raw_bytes_and_flags) {
  /* No codec on meta: even with compression on, bytes go out as given. */
  mcr_client_opts_t co = reopen_opts();
  co.compress_threshold = 1;
  reopen(&co);
  char val[3000];
  memset(val, 'z', sizeof val);
  val[7] = '\0';
  val[8] = '\r';
  val[9] = '\n';
  mcr_meta_opts_t o = opts(MCR_META_SET_FLAGS);
  o.client_flags = 0x10;
  assert_rc(mcr_client_ms(client, K("raw"), val, sizeof val, &o, NULL), MCR_OK);
  char got[4000];
  size_t len;
  uint32_t flags;
  cr_assert(raw_get(&mcd, "raw", got, sizeof got, &len, &flags));
  cr_assert_eq(len, sizeof val);
  cr_assert(memcmp(got, val, len) == 0);
  cr_assert_eq(flags, 0x10);
  o = opts(MCR_META_VALUE | MCR_META_RET_FLAGS);
  mcr_meta_result_t r;
  assert_rc(mcr_client_mg(client, K("raw"), &o, &r), MCR_OK);
  cr_assert_eq(r.value_len, sizeof val);
  cr_assert(memcmp(r.value, val, sizeof val) == 0);
  cr_assert_eq(r.client_flags, 0x10);
  /* Empty values work both ways. */
  assert_rc(mcr_client_ms(client, K("empty"), NULL, 0, NULL, NULL), MCR_OK);
  assert_rc(mcr_client_mg(client, K("empty"), &o, &r), MCR_OK);
  cr_assert_eq(r.value_len, 0);
  cr_assert(r.have & MCR_MR_VALUE);
}

Test(meta, item_size_limit) {
  mcr_client_opts_t co = reopen_opts();
  co.item_size_max = 1000;
  reopen(&co);
  static char val[1001];
  memset(val, 'v', sizeof val);
  uint64_t sets = mcd_stat(&mcd, "cmd_set");
  assert_rc(mcr_client_ms(client, K("big"), val, 1000, NULL, NULL), MCR_OK);
  assert_rc(mcr_client_ms(client, K("big"), val, 1001, NULL, NULL),
            MCR_ETOOBIG);
  cr_assert_eq(mcd_stat(&mcd, "cmd_set"), sets + 1, "the 1001 went out");
}

/* ---------------------------------------------------------------- md */

Test(meta, md_outcomes) {
  mcr_meta_opts_t o = opts(MCR_META_RET_CAS);
  mcr_meta_result_t r;
  assert_rc(mcr_client_ms(client, K("d"), V("1"), &o, &r), MCR_OK);
  uint64_t cas = r.cas;
  o = opts(MCR_META_COMPARE_CAS | MCR_META_RET_KEY | MCR_META_OPAQUE);
  o.cas = cas + 1;
  o.opaque = 99;
  assert_rc(mcr_client_md(client, K("d"), &o, &r), MCR_EXISTS);
  cr_assert_eq(r.opaque, 99);
  o.cas = cas;
  assert_rc(mcr_client_md(client, K("d"), &o, &r), MCR_OK);
  assert_bytes(r.key, r.key_len, "d");
  assert_rc(mcr_client_md(client, K("d"), NULL, &r), MCR_NOT_FOUND);
  cl_expect_miss(client, "d");
}

Test(meta, md_remove_value_flag) {
  /* x is newer than Debian 12's memcached 1.6.18, which refuses it; a
   * newer server drops the value and keeps the item. Either way the
   * connection stays usable. */
  assert_rc(mcr_client_ms(client, K("x"), V("1"), NULL, NULL), MCR_OK);
  mcr_meta_opts_t o = opts(MCR_META_REMOVE_VALUE);
  int rc = mcr_client_md(client, K("x"), &o, NULL);
  cr_assert(rc == MCR_OK || rc == MCR_ECLIENTERR, "rc %d", rc);
  if (rc == MCR_ECLIENTERR)
    cr_assert(strstr(mcr_client_last_error(client), "CLIENT_ERROR"));
  assert_rc(mcr_client_mn(client, 0), MCR_OK);
}

/* ---------------------------------------------------------------- ma */

Test(meta, ma_counts) {
  mcr_meta_result_t r;
  assert_rc(mcr_client_ma(client, K("n"), NULL, &r), MCR_NOT_FOUND);

  mcr_meta_opts_t o = opts(MCR_META_VIVIFY | MCR_META_INITIAL | MCR_META_VALUE |
                           MCR_META_RET_TTL | MCR_META_RET_CAS);
  o.vivify_ttl = 0;
  o.initial = 10;
  assert_rc(mcr_client_ma(client, K("n"), &o, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "10");
  cr_assert_eq(r.ttl, -1);
  cr_assert(r.have & MCR_MR_CAS);
  uint64_t cas = r.cas;

  o = opts(MCR_META_DELTA | MCR_META_VALUE);
  o.delta = 5;
  assert_rc(mcr_client_ma(client, K("n"), &o, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "15");

  o = opts(MCR_META_DELTA | MCR_META_VALUE | MCR_META_MODE);
  o.mode = MCR_MA_DECR;
  o.delta = 100;
  assert_rc(mcr_client_ma(client, K("n"), &o, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "0");
  o.mode = '+';
  o.delta = 7;
  assert_rc(mcr_client_ma(client, K("n"), &o, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "7");
  o.mode = '-';
  o.delta = 2;
  assert_rc(mcr_client_ma(client, K("n"), &o, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "5");
  o.mode = MCR_MA_INCR;
  o.delta = UINT64_MAX; /* wraps at 2^64 */
  assert_rc(mcr_client_ma(client, K("n"), &o, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "4");

  /* Without v the reply is HD. (memcached may pad a number that got
   * shorter with spaces, so the stored bytes are checked by prefix.) */
  assert_rc(mcr_client_ma(client, K("n"), NULL, &r), MCR_OK);
  cr_assert_eq(r.have, 0);
  mcr_item_t it;
  assert_rc(mcr_client_get(client, K("n"), &it), MCR_OK);
  cr_assert(it.value_len >= 1 && it.value[0] == '5');

  o = opts(MCR_META_COMPARE_CAS);
  o.cas = cas; /* stale by now */
  assert_rc(mcr_client_ma(client, K("n"), &o, &r), MCR_EXISTS);

  o = opts(MCR_META_TTL | MCR_META_RET_TTL | MCR_META_VALUE);
  o.ttl = 300;
  assert_rc(mcr_client_ma(client, K("n"), &o, &r), MCR_OK);
  cr_assert_eq(r.ttl, 300);
}

Test(meta, ma_on_text_value_is_client_error_and_stream_survives) {
  assert_rc(mcr_client_ms(client, K("t"), V("abc"), NULL, NULL), MCR_OK);
  assert_rc(mcr_client_ma(client, K("t"), NULL, NULL), MCR_ECLIENTERR);
  cr_assert(strstr(mcr_client_last_error(client), "CLIENT_ERROR"),
            "last error: %s", mcr_client_last_error(client));
  cl_expect(client, "t", "abc");
}

/* ---------------------------------------------------------------- mn / me */

Test(meta, mn_and_me) {
  assert_rc(mcr_client_mn(client, 0), MCR_OK);
  assert_rc(mcr_client_mn(client, 1), MCR_EINVAL);
  const char* text = "untouched";
  assert_rc(mcr_client_me(client, K("nope"), &text), MCR_MISS);
  cr_assert_null(text);
  assert_rc(mcr_client_ms(client, K("dbg"), V("12345"), NULL, NULL), MCR_OK);
  assert_rc(mcr_client_me(client, K("dbg"), &text), MCR_OK);
  cr_assert(strncmp(text, "ME dbg ", 7) == 0, "%s", text);
  cr_assert(strstr(text, " exp=") && strstr(text, " cas="), "%s", text);
  assert_rc(mcr_client_me(client, K("bad key"), &text), MCR_EKEY);
}

/* ---------------------------------------------------------------- quiet */

Test(meta, quiet_single_commands_get_implied_status) {
  mcr_meta_opts_t q = opts(MCR_META_QUIET);
  mcr_meta_result_t r;
  assert_rc(mcr_client_ms(client, K("q"), V("v"), &q, &r), MCR_OK);
  assert_rc(mcr_client_mg(client, K("nothing"), &q, &r), MCR_MISS);
  /* q hides only the common case: a hit still answers, NS still answers. */
  q.flags |= MCR_META_VALUE;
  assert_rc(mcr_client_mg(client, K("q"), &q, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "v");
  mcr_meta_opts_t add = opts(MCR_META_QUIET | MCR_META_MODE);
  add.mode = MCR_MS_ADD;
  assert_rc(mcr_client_ms(client, K("q"), V("w"), &add, &r), MCR_NOT_STORED);
  /* md: HD is hidden, NF is not. */
  mcr_meta_opts_t qd = opts(MCR_META_QUIET);
  assert_rc(mcr_client_md(client, K("q"), &qd, &r), MCR_OK);
  assert_rc(mcr_client_md(client, K("q"), &qd, &r), MCR_NOT_FOUND);
  /* Each call read exactly up to its MN: the next plain call is in sync. */
  assert_rc(mcr_client_ms(client, K("q"), V("z"), NULL, NULL), MCR_OK);
  cl_expect(client, "q", "z");
}

/* ---------------------------------------------------------------- base64 */

Test(meta, base64_binary_keys) {
  const char bin[] = {'\0', ' ', '\r', '\n', 'k', (char)0xff, '\t'};
  mcr_meta_opts_t o = opts(MCR_META_BASE64 | MCR_META_RET_KEY);
  mcr_meta_result_t r;
  assert_rc(mcr_client_ms(client, bin, sizeof bin, V("binval"), &o, &r),
            MCR_OK);
  cr_assert(r.have & MCR_MR_KEY);
  cr_assert_eq(r.key_len, sizeof bin, "the key comes back decoded");
  cr_assert(memcmp(r.key, bin, sizeof bin) == 0);

  o.flags |= MCR_META_VALUE;
  assert_rc(mcr_client_mg(client, bin, sizeof bin, &o, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "binval");
  cr_assert(memcmp(r.key, bin, sizeof bin) == 0);

  /* Base64 is only the wire form: the server stores the raw bytes. */
  o = opts(MCR_META_BASE64);
  assert_rc(mcr_client_ms(client, K("plain"), V("seen"), &o, NULL), MCR_OK);
  char got[16];
  size_t len;
  uint32_t flags;
  cr_assert(raw_get(&mcd, "plain", got, sizeof got, &len, &flags));
  cr_assert_eq(len, 4);
  cl_expect(client, "plain", "seen");

  assert_rc(mcr_client_md(client, bin, sizeof bin, &o, NULL), MCR_OK);
  assert_rc(mcr_client_mg(client, bin, sizeof bin, &o, NULL), MCR_MISS);

  /* Limits: 1..186 raw bytes (248 base64 characters). */
  char longest[186];
  memset(longest, 0x01, sizeof longest);
  assert_rc(mcr_client_ms(client, longest, 186, V("l"), &o, NULL), MCR_OK);
  assert_rc(mcr_client_mg(client, longest, 186, &o, NULL), MCR_OK);
  char too_long[187];
  memset(too_long, 0x01, sizeof too_long);
  assert_rc(mcr_client_mg(client, too_long, 187, &o, NULL), MCR_EKEY);
  assert_rc(mcr_client_mg(client, bin, 0, &o, NULL), MCR_EKEY);
}

/* ---------------------------------------------------------------- stampede */

Test(meta, vivify_gives_one_winner) {
  mcr_client_t* other = client_new(mcd.servers, NULL);
  mcr_meta_opts_t o = opts(MCR_META_VIVIFY | MCR_META_VALUE | MCR_META_RET_CAS);
  o.vivify_ttl = 30;
  mcr_meta_result_t a, b;
  /* The miss creates an empty stub and hands this client the win. */
  assert_rc(mcr_client_mg(client, K("hot"), &o, &a), MCR_OK);
  cr_assert_eq(a.win, 1);
  cr_assert_eq(a.won_already, 0);
  cr_assert_eq(a.value_len, 0);
  /* Everyone else sees the stub with Z: someone is recaching. */
  assert_rc(mcr_client_mg(other, K("hot"), &o, &b), MCR_OK);
  cr_assert_eq(b.win, 0);
  cr_assert_eq(b.won_already, 1);
  assert_rc(mcr_client_mg(other, K("hot"), &o, &b), MCR_OK);
  cr_assert_eq(b.win, 0);

  /* The winner stores the real value under its cas. */
  mcr_meta_opts_t s = opts(MCR_META_COMPARE_CAS | MCR_META_TTL);
  s.cas = a.cas;
  s.ttl = 60;
  assert_rc(mcr_client_ms(client, K("hot"), V("fresh"), &s, NULL), MCR_OK);
  assert_rc(mcr_client_mg(other, K("hot"), &o, &b), MCR_OK);
  assert_bytes(b.value, b.value_len, "fresh");
  cr_assert(!b.win && !b.won_already && !b.stale);
  mcr_client_free(other);
}

Test(meta, invalidate_marks_stale_and_hands_out_one_win) {
  assert_rc(mcr_client_ms(client, K("inv"), V("old"), NULL, NULL), MCR_OK);
  mcr_meta_opts_t d = opts(MCR_META_INVALIDATE | MCR_META_TTL);
  d.ttl = 30;
  assert_rc(mcr_client_md(client, K("inv"), &d, NULL), MCR_OK);

  mcr_meta_opts_t o =
      opts(MCR_META_VALUE | MCR_META_RET_CAS | MCR_META_RET_TTL);
  mcr_meta_result_t r1, r2;
  assert_rc(mcr_client_mg(client, K("inv"), &o, &r1), MCR_OK);
  cr_assert_eq(r1.stale, 1);
  cr_assert_eq(r1.win, 1);
  cr_assert(r1.ttl > 0 && r1.ttl <= 30, "ttl %lld", (long long)r1.ttl);
  assert_bytes(r1.value, r1.value_len, "old"); /* stale data still served */
  uint64_t cas = r1.cas;
  assert_rc(mcr_client_mg(client, K("inv"), &o, &r2), MCR_OK);
  cr_assert_eq(r2.stale, 1);
  cr_assert_eq(r2.win, 0);
  cr_assert_eq(r2.won_already, 1);

  /* The winner recaches with the cas it saw; the item is fresh again. */
  mcr_meta_opts_t s = opts(MCR_META_COMPARE_CAS);
  s.cas = cas;
  assert_rc(mcr_client_ms(client, K("inv"), V("new"), &s, NULL), MCR_OK);
  assert_rc(mcr_client_mg(client, K("inv"), &o, &r1), MCR_OK);
  assert_bytes(r1.value, r1.value_len, "new");
  cr_assert(!r1.stale && !r1.win && !r1.won_already);
}

Test(meta, ms_invalidate_with_an_older_cas_stores_stale) {
  mcr_meta_opts_t c = opts(MCR_META_RET_CAS);
  mcr_meta_result_t r;
  assert_rc(mcr_client_ms(client, K("si"), V("v1"), &c, &r), MCR_OK);
  uint64_t old = r.cas;
  assert_rc(mcr_client_ms(client, K("si"), V("v2"), &c, &r), MCR_OK);
  /* Without I an old cas is refused... */
  mcr_meta_opts_t s = opts(MCR_META_COMPARE_CAS);
  s.cas = old;
  assert_rc(mcr_client_ms(client, K("si"), V("v3"), &s, NULL), MCR_EXISTS);
  /* ...with I it is stored, but marked stale. */
  s.flags |= MCR_META_INVALIDATE;
  assert_rc(mcr_client_ms(client, K("si"), V("v3"), &s, NULL), MCR_OK);
  mcr_meta_opts_t o = opts(MCR_META_VALUE);
  assert_rc(mcr_client_mg(client, K("si"), &o, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "v3");
  cr_assert_eq(r.stale, 1);
  cr_assert_eq(r.win, 1);
}

Test(meta, recache_wins_below_the_ttl_threshold) {
  mcr_meta_opts_t s = opts(MCR_META_TTL);
  s.ttl = 10;
  assert_rc(mcr_client_ms(client, K("rc"), V("v"), &s, NULL), MCR_OK);
  mcr_meta_opts_t o = opts(MCR_META_RECACHE | MCR_META_VALUE);
  o.recache_ttl = 5; /* 10 s left: above the threshold, no win */
  mcr_meta_result_t r;
  assert_rc(mcr_client_mg(client, K("rc"), &o, &r), MCR_OK);
  cr_assert(!r.win && !r.won_already);
  o.recache_ttl = 30; /* below: the first asker wins, the next sees Z */
  assert_rc(mcr_client_mg(client, K("rc"), &o, &r), MCR_OK);
  cr_assert_eq(r.win, 1);
  assert_rc(mcr_client_mg(client, K("rc"), &o, &r), MCR_OK);
  cr_assert_eq(r.win, 0);
  cr_assert_eq(r.won_already, 1);
}

/* ---------------------------------------------------------------- validation
 */

/* A fake server that never answers: a rejected call must leave it
 * without a single byte. */
Test(meta_own, invalid_arguments_send_nothing) {
  fake_opts_t fo = {.mode = FAKE_SILENT};
  fake_t* f = fake_start(&fo);
  mcr_client_opts_t co;
  mcr_client_opts_init(&co);
  co.item_size_max = 100;
  co.io_timeout_ms = 200;
  client = client_new(fake_servers_string(f), &co);
  static char big[101];

  struct {
    char op;
    const char* key;
    size_t key_len;
    size_t value_len;
    uint32_t flags;
    char mode;
    int64_t ttl;
    int want;
  } table[] = {
      {'g', "ok", 2, 0, MCR_META_SET_FLAGS, 0, 0, MCR_EINVAL},
      {'g', "ok", 2, 0, MCR_META_MODE, 'S', 0, MCR_EINVAL},
      {'g', "ok", 2, 0, 1u << 30, 0, 0, MCR_EINVAL},
      {'s', "ok", 2, 1, MCR_META_VIVIFY, 0, 0, MCR_EINVAL},
      {'s', "ok", 2, 1, MCR_META_VALUE, 0, 0, MCR_EINVAL},
      {'s', "ok", 2, 1, MCR_META_MODE, 'X', 0, MCR_EINVAL},
      {'s', "ok", 2, 1, MCR_META_MODE, 'I', 0, MCR_EINVAL},
      {'s', "ok", 2, 1, MCR_META_MODE, 0, 0, MCR_EINVAL},
      {'s', "ok", 2, 1, MCR_META_INVALIDATE, 0, 0, MCR_EINVAL},
      {'s', "ok", 2, 101, 0, 0, 0, MCR_ETOOBIG},
      {'d', "ok", 2, 0, MCR_META_TTL, 0, 5, MCR_EINVAL},
      {'d', "ok", 2, 0, MCR_META_VALUE, 0, 0, MCR_EINVAL},
      {'a', "ok", 2, 0, MCR_META_MODE, 'S', 0, MCR_EINVAL},
      {'a', "ok", 2, 0, MCR_META_INITIAL, 0, 0, MCR_EINVAL},
      {'a', "ok", 2, 0, MCR_META_RET_FLAGS, 0, 0, MCR_EINVAL},
      {'g', "ok", 2, 0, MCR_META_TTL, 0, (int64_t)INT32_MAX + 1, MCR_ERANGE},
      {'g', "ok", 2, 0, MCR_META_TTL, 0, (int64_t)INT32_MIN - 1, MCR_ERANGE},
      {'g', "with space", 10, 0, 0, 0, 0, MCR_EKEY},
      {'g', "ctl\x01", 4, 0, 0, 0, 0, MCR_EKEY},
      {'g', "", 0, 0, 0, 0, 0, MCR_EKEY},
      {'g', NULL, 3, 0, 0, 0, 0, MCR_EKEY},
      {'d', "k\r\nmn", 5, 0, 0, 0, 0, MCR_EKEY},
      {'x', "ok", 2, 0, 0, 0, 0, MCR_EINVAL},
  };
  static char k251[251];
  memset(k251, 'k', sizeof k251);
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    mcr_meta_opts_t o = opts(table[i].flags);
    o.mode = table[i].mode;
    o.ttl = table[i].ttl;
    mcr_meta_result_t r;
    int rc;
    switch (table[i].op) {
      case 'g':
        rc = mcr_client_mg(client, table[i].key, table[i].key_len, &o, &r);
        break;
      case 's':
        rc = mcr_client_ms(client, table[i].key, table[i].key_len, big,
                           table[i].value_len, &o, &r);
        break;
      case 'd':
        rc = mcr_client_md(client, table[i].key, table[i].key_len, &o, &r);
        break;
      case 'a':
        rc = mcr_client_ma(client, table[i].key, table[i].key_len, &o, &r);
        break;
      default: {
        mcr_meta_cmd_t cmd = {.op = table[i].op,
                              .key = table[i].key,
                              .key_len = table[i].key_len};
        rc = t_meta_pipeline(client, &cmd, 1);
      }
    }
    cr_assert_eq(rc, table[i].want, "row %zu: got %d (%s) want %s", i, rc,
                 mcr_err_name(rc), mcr_err_name(table[i].want));
    if (table[i].op != 'x')
      cr_assert_eq(r.status, table[i].want);
    cr_assert_neq(mcr_client_last_error(client)[0], '\0', "row %zu", i);
  }
  assert_rc(mcr_client_mg(client, k251, 251, NULL, NULL), MCR_EKEY);
  assert_rc(mcr_client_ms(client, K("ok"), NULL, 3, NULL, NULL), MCR_EINVAL);

  /* A pipeline with one bad command sends none of the good ones. */
  mcr_meta_cmd_t cmds[3] = {
      {.op = 'g', .key = "a", .key_len = 1},
      {.op = 's', .key = "b", .key_len = 1, .value = "v", .value_len = 1},
      {.op = 'd', .key = "bad key", .key_len = 7},
  };
  assert_rc(t_meta_pipeline(client, cmds, 3), MCR_EKEY);
  cmds[2].key_len = 3; /* "bad" */
  cmds[1].opts.flags = MCR_META_MODE;
  cmds[1].opts.mode = 'Q';
  assert_rc(t_meta_pipeline(client, cmds, 3), MCR_EINVAL);
  assert_rc(t_meta_pipeline(client, NULL, 2), MCR_EINVAL);
  assert_rc(t_meta_pipeline(client, NULL, 0), 0);

  cr_assert_eq(fake_received(f, NULL, 0), 0, "bytes reached the server");
  mcr_client_free(client);
  client = NULL;
  fake_stop(f);
}

/* ---------------------------------------------------------------- pipeline */

Test(meta, pipeline_mixed_commands_on_one_node) {
  assert_rc(mcr_client_ms(client, K("p-exists"), V("e"), NULL, NULL), MCR_OK);
  assert_rc(mcr_client_ms(client, K("p-num"), V("41"), NULL, NULL), MCR_OK);
  mcr_meta_cmd_t cmds[] = {
      {.op = 's', .key = "p1", .key_len = 2, .value = "one", .value_len = 3},
      {.op = 's',
       .key = "p2",
       .key_len = 2,
       .value = "two",
       .value_len = 3,
       .opts = {.flags = MCR_META_SET_FLAGS | MCR_META_RET_CAS,
                .client_flags = 9}},
      {.op = 'g', .key = "p1", .key_len = 2, .opts = {.flags = MCR_META_VALUE}},
      {.op = 'g',
       .key = "p-miss",
       .key_len = 6,
       .opts = {.flags = MCR_META_VALUE}},
      {.op = 'g',
       .key = "p2",
       .key_len = 2,
       .opts = {.flags = MCR_META_VALUE | MCR_META_RET_FLAGS |
                         MCR_META_RET_KEY | MCR_META_OPAQUE,
                .opaque = 555}},
      {.op = 's',
       .key = "p-exists",
       .key_len = 8,
       .value = "x",
       .value_len = 1,
       .opts = {.flags = MCR_META_MODE, .mode = MCR_MS_ADD}},
      {.op = 'd', .key = "p-exists", .key_len = 8},
      {.op = 'd', .key = "p-gone", .key_len = 6},
      {.op = 'a',
       .key = "p-num",
       .key_len = 5,
       .opts = {.flags = MCR_META_VALUE}},
      {.op = 'a', .key = "p-num", .key_len = 5},
      {.op = 'a', .key = "p-none", .key_len = 6},
      {.op = 'g', .key = "p1", .key_len = 2},
  };
  size_t n = sizeof cmds / sizeof cmds[0];
  for (size_t i = 0; i < n; i++)
    cmds[i].result.status = 12345;
  int ok = t_meta_pipeline(client, cmds, n);
  int want[] = {MCR_OK, MCR_OK,         MCR_OK,        MCR_MISS,
                MCR_OK, MCR_NOT_STORED, MCR_OK,        MCR_NOT_FOUND,
                MCR_OK, MCR_OK,         MCR_NOT_FOUND, MCR_OK};
  assert_statuses(cmds, n, want);
  int wok = 0;
  for (size_t i = 0; i < n; i++)
    wok += want[i] == MCR_OK;
  cr_assert_eq(ok, wok);
  assert_bytes(cmds[2].result.value, cmds[2].result.value_len, "one");
  assert_bytes(cmds[4].result.value, cmds[4].result.value_len, "two");
  cr_assert_eq(cmds[4].result.client_flags, 9);
  /* An ms that asks for its cas is sent without q, so the cas arrives. */
  cr_assert(cmds[1].result.have & MCR_MR_CAS);
  cr_assert_neq(cmds[1].result.cas, 0);
  assert_bytes(cmds[4].result.key, cmds[4].result.key_len, "p2");
  cr_assert_eq(cmds[4].result.have & MCR_MR_OPAQUE, 0,
               "the opaque is the pipeline's own");
  assert_bytes(cmds[8].result.value, cmds[8].result.value_len, "42");
  cr_assert_eq(cmds[11].result.have, 0, "mg hit without flags: HD");
  cl_expect(client, "p-num", "43");
  cl_expect_miss(client, "p-exists");
  /* The stream is in sync afterwards. */
  assert_rc(mcr_client_mn(client, 0), MCR_OK);
}

Test(meta, pipeline_many_and_large_commands) {
  /* More pieces than one sendmsg takes, values copied and referenced. */
  enum { N = 300 };
  static mcr_meta_cmd_t cmds[2 * N];
  static char keys[N][16];
  static char vals[N][5000];
  for (int i = 0; i < N; i++) {
    int kl = 0;
    int v = i;
    keys[i][kl++] = 'k';
    do {
      keys[i][kl++] = (char)('0' + v % 10);
      v /= 10;
    } while (v);
    memset(vals[i], 'a' + i % 26, sizeof vals[i]);
    size_t vl = i % 2 ? sizeof vals[i] : (size_t)(i % 100); /* big / small */
    cmds[i] = (mcr_meta_cmd_t){.op = 's',
                               .key = keys[i],
                               .key_len = (size_t)kl,
                               .value = vals[i],
                               .value_len = vl};
    cmds[N + i] = (mcr_meta_cmd_t){.op = 'g',
                                   .key = keys[i],
                                   .key_len = (size_t)kl,
                                   .opts = {.flags = MCR_META_VALUE}};
  }
  assert_rc(t_meta_pipeline(client, cmds, 2 * N), 2 * N);
  for (int i = 0; i < N; i++) {
    mcr_meta_result_t* r = &cmds[N + i].result;
    cr_assert_eq(r->value_len, cmds[i].value_len, "key %d", i);
    cr_assert(memcmp(r->value, vals[i], r->value_len) == 0, "key %d", i);
  }
}

Test(meta, pipeline_error_lines_are_charged_to_their_command) {
  assert_rc(mcr_client_ms(client, K("txt"), V("abc"), NULL, NULL), MCR_OK);
  assert_rc(mcr_client_ms(client, K("hit"), V("h"), NULL, NULL), MCR_OK);
  /* Replies around the error pin it down: mg hit, ma (error), mg hit. */
  mcr_meta_cmd_t a[] = {
      {.op = 'g', .key = "hit", .key_len = 3},
      {.op = 'a', .key = "txt", .key_len = 3},
      {.op = 'g', .key = "hit", .key_len = 3},
  };
  assert_rc(t_meta_pipeline(client, a, 3), 2);
  assert_statuses(a, 3, (const int[]){MCR_OK, MCR_ECLIENTERR, MCR_OK});
  cr_assert(strstr(mcr_client_last_error(client), "CLIENT_ERROR"));

  /* A silent ms before the error: either may have failed, both are
   * charged. The ms did succeed, as the server shows. */
  mcr_meta_cmd_t b[] = {
      {.op = 's', .key = "quiet", .key_len = 5, .value = "q", .value_len = 1},
      {.op = 'a', .key = "txt", .key_len = 3},
      {.op = 'g', .key = "hit", .key_len = 3},
      {.op = 'd', .key = "hit", .key_len = 3},
  };
  assert_rc(t_meta_pipeline(client, b, 4), 2);
  assert_statuses(
      b, 4, (const int[]){MCR_ECLIENTERR, MCR_ECLIENTERR, MCR_OK, MCR_OK});
  cl_expect(client, "quiet", "q");
  cl_expect_miss(client, "hit");
}

/* Returns a key that routes to node `node` of c. */
static void key_for_node(mcr_client_t* c, size_t node, char* out, int seed) {
  for (int i = 0;; i++) {
    int len = 0;
    out[len++] = 'n';
    int v = seed * 1000 + i;
    do {
      out[len++] = (char)('0' + v % 10);
      v /= 10;
    } while (v);
    out[len] = '\0';
    if ((size_t)mcr__route(c, out, (size_t)len)->at == node)
      return;
  }
}

Test(meta_own, pipeline_one_failing_node_costs_only_its_commands) {
  mcd_start(&mcd, NULL);
  refuser_t dead;
  refuser_start(&dead);
  char servers[256];
  strcpy(servers, mcd.servers);
  strcat(servers, ",");
  strcat(servers, dead.servers);
  mcr_client_opts_t co;
  mcr_client_opts_init(&co);
  co.connect_timeout_ms = 500;
  client = client_new(servers, &co);
  cr_assert_eq(mcr_client_node_count(client), 2);

  enum { N = 8 };
  char keys[N][32];
  mcr_meta_cmd_t cmds[N];
  for (int i = 0; i < N; i++) {
    key_for_node(client, (size_t)(i % 2), keys[i], i);
    cmds[i] = (mcr_meta_cmd_t){.op = 's',
                               .key = keys[i],
                               .key_len = strlen(keys[i]),
                               .value = "v",
                               .value_len = 1};
  }
  assert_rc(t_meta_pipeline(client, cmds, N), N / 2);
  for (int i = 0; i < N; i++) {
    if (i % 2 == 0) {
      assert_rc(cmds[i].result.status, MCR_OK);
      cl_expect(client, keys[i], "v");
    } else {
      assert_rc(cmds[i].result.status, MCR_ECONNECT);
    }
  }

  /* With ignore_errors the dead node's reads miss and writes are lost. */
  mcr_client_free(client);
  co.ignore_errors = 1;
  client = client_new(servers, &co);
  for (int i = 0; i < N; i++) {
    cmds[i].op = i < N / 2 ? 's' : 'g';
    memset(&cmds[i].opts, 0, sizeof cmds[i].opts);
  }
  t_meta_pipeline(client, cmds, N);
  for (int i = 0; i < N; i++) {
    int want = i % 2 == 0 ? MCR_OK : i < N / 2 ? MCR_NOT_STORED : MCR_MISS;
    assert_rc(cmds[i].result.status, want);
  }
  cr_assert_eq(cl_stats(client).ignored_errors, N / 2);
  assert_rc(mcr_client_mg(client, keys[1], strlen(keys[1]), NULL, NULL),
            MCR_MISS);
  refuser_stop(&dead);
}

Test(meta_own, pipeline_silent_node_times_out_alone) {
  mcd_start(&mcd, NULL);
  fake_opts_t fo = {.mode = FAKE_SILENT};
  fake_t* f = fake_start(&fo);
  char servers[256];
  strcpy(servers, mcd.servers);
  strcat(servers, ",");
  strcat(servers, fake_servers_string(f));
  mcr_client_opts_t co;
  mcr_client_opts_init(&co);
  co.io_timeout_ms = 300;
  client = client_new(servers, &co);
  char k0[32], k1[32];
  key_for_node(client, 0, k0, 1);
  key_for_node(client, 1, k1, 2);
  assert_rc(mcr_client_ms(client, K(k0), V("here"), NULL, NULL), MCR_OK);
  mcr_meta_cmd_t cmds[] = {
      {.op = 'g',
       .key = k1,
       .key_len = strlen(k1),
       .opts = {.flags = MCR_META_VALUE}},
      {.op = 'g',
       .key = k0,
       .key_len = strlen(k0),
       .opts = {.flags = MCR_META_VALUE}},
  };
  int64_t t0 = now_ms();
  assert_rc(t_meta_pipeline(client, cmds, 2), 1);
  int64_t took = now_ms() - t0;
  cr_assert(took < 300 + TEST_SLACK_MS, "took %lld ms", (long long)took);
  assert_rc(cmds[0].result.status, MCR_ETIMEOUT);
  assert_rc(cmds[1].result.status, MCR_OK);
  assert_bytes(cmds[1].result.value, cmds[1].result.value_len, "here");
  mcr_client_free(client);
  client = NULL;
  fake_stop(f);
}

/* ---------------------------------------------------------------- violations
 */

/* A client on a fake that answers `script` first, then relays to the real
 * memcached: the bad reply must fail the call, the next call must work. */
static fake_t* scripted(const char* const* script) {
  if (!mcd.pid)
    mcd_start(&mcd, NULL);
  fake_opts_t fo = {.mode = FAKE_SCRIPT,
                    .bad_conns = 1,
                    .then = FAKE_PROXY,
                    .script = script,
                    .backend = &mcd};
  fake_t* f = fake_start(&fo);
  mcr_client_opts_t co;
  mcr_client_opts_init(&co);
  /* Long, so that "did not wait for a timeout" holds on any machine. */
  co.io_timeout_ms = 5000;
  client = client_new(fake_servers_string(f), &co);
  return f;
}

static void next_call_works(void) {
  assert_rc(mcr_client_ms(client, K("after"), V("ok"), NULL, NULL), MCR_OK);
  mcr_meta_opts_t o = opts(MCR_META_VALUE);
  mcr_meta_result_t r;
  assert_rc(mcr_client_mg(client, K("after"), &o, &r), MCR_OK);
  assert_bytes(r.value, r.value_len, "ok");
}

static void done_scripted(fake_t* f) {
  mcr_client_free(client);
  client = NULL;
  fake_stop(f);
}

Test(meta_own, timeout_is_bounded_then_the_next_call_works) {
  mcd_start(&mcd, NULL);
  fake_opts_t fo = {
      .mode = FAKE_SILENT, .bad_conns = 1, .then = FAKE_PROXY, .backend = &mcd};
  fake_t* f = fake_start(&fo);
  mcr_client_opts_t co = reopen_opts();
  co.io_timeout_ms = 200;
  client = client_new(fake_servers_string(f), &co);
  mcr_meta_cmd_t cmds[] = {
      {.op = 's', .key = "a", .key_len = 1, .value = "1", .value_len = 1},
      {.op = 'g', .key = "a", .key_len = 1}};
  int64_t t0 = now_ms();
  assert_rc(t_meta_pipeline(client, cmds, 2), 0);
  int64_t took = now_ms() - t0;
  cr_assert(took >= 195 && took < 200 + TEST_SLACK_MS, "took %lld ms",
            (long long)took);
  assert_statuses(cmds, 2, (const int[]){MCR_ETIMEOUT, MCR_ETIMEOUT});
  next_call_works();
  done_scripted(f);
}

Test(meta_own, ignore_errors_softens_meta_calls) {
  refuser_t dead;
  refuser_start(&dead);
  mcr_client_opts_t co = reopen_opts();
  co.ignore_errors = 1;
  client = client_new(dead.servers, &co);
  mcr_meta_opts_t v = opts(MCR_META_VALUE);
  assert_rc(mcr_client_mg(client, K("k"), &v, NULL), MCR_MISS);
  assert_rc(mcr_client_ms(client, K("k"), V("v"), NULL, NULL), MCR_NOT_STORED);
  assert_rc(mcr_client_md(client, K("k"), NULL, NULL), MCR_NOT_STORED);
  assert_rc(mcr_client_ma(client, K("k"), NULL, NULL), MCR_NOT_STORED);
  const char* text;
  assert_rc(mcr_client_me(client, K("k"), &text), MCR_MISS);
  mcr_meta_cmd_t cmds[] = {
      {.op = 'g', .key = "a", .key_len = 1},
      {.op = 's', .key = "a", .key_len = 1, .value = "1", .value_len = 1}};
  assert_rc(t_meta_pipeline(client, cmds, 2), 0);
  assert_statuses(cmds, 2, (const int[]){MCR_MISS, MCR_NOT_STORED});
  cr_assert_eq(cl_stats(client).ignored_errors, 7);
  /* Validation errors still reach the caller; mn is never softened (after
   * seven failures the node is marked down, so that is its error). */
  assert_rc(mcr_client_mg(client, K("bad key"), NULL, NULL), MCR_EKEY);
  assert_rc(mcr_client_mn(client, 0), MCR_ENODEDOWN);
  refuser_stop(&dead);
}

Test(meta_own, malformed_replies_are_eproto_then_the_next_call_works) {
  static const struct {
    const char* reply;
    char op;
    uint32_t flags;
  } table[] = {
      {"VA notanumber\r\n", 'g', 0},
      {"VA 3\r\nabcXY", 'g', MCR_META_VALUE}, /* block not ended by \r\n */
      {"HD c12x\r\n", 'g', MCR_META_RET_CAS},
      {"HD c\r\n", 'g', MCR_META_RET_CAS},
      {"HD f4294967296\r\n", 'g', MCR_META_RET_FLAGS},
      {"HD h2\r\n", 'g', MCR_META_RET_HIT},
      {"HD W1\r\n", 'g', 0},
      {"HD  c1\r\n", 'g', 0},
      {"HD c1 \r\n", 'g', 0},
      {"HD k\r\n", 'g', MCR_META_RET_KEY},
      {"HD k!!! b\r\n", 'g', MCR_META_RET_KEY},
      {"EN\r\n", 'd', 0}, /* a code md never answers */
      {"VA 1\r\n1\r\n", 'd', 0},
      {"NS\r\n", 'g', 0},
      {"MN\r\n", 'g', 0},                  /* MN without q */
      {"HD O6\r\n", 'g', MCR_META_OPAQUE}, /* opaque 5 was sent */
      {"HD\r\n", 'g', MCR_META_OPAQUE},
      {"VALUE k 0 1\r\nx\r\nEND\r\n", 'g', 0},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    const char* script[] = {table[i].reply, NULL};
    fake_t* f = scripted(script);
    mcr_meta_opts_t o = opts(table[i].flags);
    o.opaque = 5;
    int rc = table[i].op == 'g' ? mcr_client_mg(client, K("k"), &o, NULL)
                                : mcr_client_md(client, K("k"), &o, NULL);
    cr_assert_eq(rc, MCR_EPROTO, "row %zu (%s): %s", i, table[i].reply,
                 mcr_err_name(rc));
    next_call_works();
    done_scripted(f);
  }
}

Test(meta_own, unknown_return_flags_are_skipped) {
  static const char* const script[] = {"HD Q1 c5 zzz\r\n", NULL};
  fake_t* f = scripted(script);
  mcr_meta_opts_t o = opts(MCR_META_RET_CAS);
  mcr_meta_result_t r;
  assert_rc(mcr_client_mg(client, K("k"), &o, &r), MCR_OK);
  cr_assert_eq(r.cas, 5);
  done_scripted(f);
}

Test(meta_own, pipeline_stray_opaque_is_eproto) {
  /* Each request line gets one scripted answer: the first mg an answer for
   * a command that does not exist, the second nothing useful. */
  static const char* const script[] = {"HD O77\r\n", "MN\r\n", NULL};
  fake_t* f = scripted(script);
  mcr_meta_cmd_t cmds[] = {{.op = 'g', .key = "a", .key_len = 1},
                           {.op = 'g', .key = "b", .key_len = 1}};
  assert_rc(t_meta_pipeline(client, cmds, 2), 0);
  assert_rc(cmds[0].result.status, MCR_EPROTO);
  assert_rc(cmds[1].result.status, MCR_EPROTO);
  next_call_works();
  done_scripted(f);
}

Test(meta_own, pipeline_on_a_server_without_meta) {
  /* An old memcached answers ERROR to every line, mn included. */
  static const char* const script[] = {"ERROR\r\n", NULL};
  fake_t* f = scripted(script);
  mcr_meta_cmd_t cmds[] = {{.op = 'g', .key = "a", .key_len = 1},
                           {.op = 'd', .key = "b", .key_len = 1}};
  int64_t t0 = now_ms();
  assert_rc(t_meta_pipeline(client, cmds, 2), 0);
  cr_assert(now_ms() - t0 < 5000, "waited for a timeout");
  assert_rc(cmds[0].result.status, MCR_ESERVERCMD);
  assert_rc(cmds[1].result.status, MCR_ESERVERCMD);
  next_call_works();
  done_scripted(f);
}

Test(meta_own, closed_mid_value_is_an_error_then_recovers) {
  mcd_start(&mcd, NULL);
  fake_opts_t fo = {.mode = FAKE_CLOSE_MID,
                    .bad_conns = 1,
                    .then = FAKE_PROXY,
                    .backend = &mcd};
  fake_t* f = fake_start(&fo);
  client = client_new(fake_servers_string(f), NULL);
  mcr_meta_opts_t o = opts(MCR_META_VALUE);
  /* The fake answers a text VALUE line: wrong for mg, and then it closes. */
  int rc = mcr_client_mg(client, K("k"), &o, NULL);
  cr_assert(rc == MCR_EPROTO || rc == MCR_ECLOSED, "rc %s", mcr_err_name(rc));
  next_call_works();
  done_scripted(f);
}
