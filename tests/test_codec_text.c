/* test_codec_text.c — the text protocol's codec (lib/codec_text.c) and the
 * one-key get's fast path.
 *
 * Without a server: the classification of server error lines, the one-key
 * request line builder, and the one-pass reply check (every prefix of a
 * reply, every extra byte, malformed replies). With a fake server: the same
 * replies through mcr_client_get / gets, split across two receives at every
 * byte boundary, and malformed ones, each with the connection kept or
 * closed as the protocol rules say. With a real memcached: values whose
 * reply ends just before, at and just after the receive buffer's edge.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "support.h"

Test(error_line, classes) {
  cr_assert_eq(mcr__error_line("ERROR", 5), MCR_ESERVERCMD);
  cr_assert_eq(mcr__error_line("ERROR unknown command", 21), MCR_ESERVERCMD);
  cr_assert_eq(mcr__error_line("ERRORS", 6), 0);
  cr_assert_eq(mcr__error_line("CLIENT_ERROR bad data chunk", 27),
               MCR_ECLIENTERR);
  cr_assert_eq(mcr__error_line("SERVER_ERROR out of memory", 26),
               MCR_ESERVERERR);
  cr_assert_eq(mcr__error_line("STORED", 6), 0);
}

/* ------------------------------------------------------------ one-key get */

Test(get_request, every_key_length_and_command) {
  static const char* const words[] = {"get ", "gets ", "gat -7 ", "gats 300 "};
  static const int64_t ttls[] = {0, 0, -7, 300};
  for (size_t len = 1; len <= MCR__KEY_MAX; len++) {
    /* The key at the very end of its allocation: a read past it is an
     * ASan error in the sanitizer build. */
    char* key = malloc(len);
    cr_assert_not_null(key);
    for (size_t i = 0; i < len; i++)
      key[i] = (char)('!' + (i * 7) % 94);
    for (int cmd = MCR__GET; cmd <= MCR__GATS; cmd++) {
      char req[MCR__GET_REQ_MAX], want[MCR__GET_REQ_MAX];
      size_t n =
          mcr__text_get_request((mcr__get_t)cmd, ttls[cmd], key, len, req);
      size_t wl = strlen(words[cmd]);
      memcpy(want, words[cmd], wl);
      memcpy(want + wl, key, len);
      memcpy(want + wl + len, "\r\n", 2);
      cr_assert_eq(n, wl + len + 2, "len %zu cmd %d: %zu bytes", len, cmd, n);
      cr_assert(memcmp(req, want, n) == 0, "len %zu cmd %d", len, cmd);
    }
    /* A bad byte anywhere refuses the key; a good one anywhere is copied. */
    static const unsigned char probes[] = {0x00, 0x0a, 0x0d, 0x1f, 0x20,
                                           0x21, 0x7e, 0x7f, 0x80, 0xff};
    for (size_t pos = 0; pos < len; pos++) {
      char save = key[pos];
      for (size_t b = 0; b < sizeof probes; b++) {
        key[pos] = (char)probes[b];
        bool bad = probes[b] <= 0x20 || probes[b] == 0x7f;
        char req[MCR__GET_REQ_MAX];
        size_t n = mcr__text_get_request(MCR__GET, 0, key, len, req);
        cr_assert_eq(n, bad ? 0 : 4 + len + 2, "len %zu, 0x%02x at %zu", len,
                     probes[b], pos);
        if (!bad)
          cr_assert(memcmp(req + 4, key, len) == 0 &&
                    memcmp(req + 4 + len, "\r\n", 2) == 0);
      }
      key[pos] = save;
    }
    free(key);
  }
  char req[MCR__GET_REQ_MAX];
  cr_assert_eq(mcr__text_get_request(MCR__GET, 0, NULL, 3, req), 0);
  cr_assert_eq(mcr__text_get_request(MCR__GET, 0, "k", 0, req), 0);
  char k251[251];
  memset(k251, 'k', sizeof k251);
  cr_assert_eq(mcr__text_get_request(MCR__GET, 0, k251, 251, req), 0);
}

/* A reply as the fast check must see it: in an allocation of exactly len
 * bytes (ASan catches any read past it). */
static int fast(const char* reply, size_t len, const char* key, bool cas,
                mcr_item_t* it) {
  char* b = malloc(len ? len : 1);
  cr_assert_not_null(b);
  memcpy(b, reply, len);
  *it = (mcr_item_t){.status = 99};
  mcr__get_ctx_t g = {.key = key,
                      .key_len = strlen(key),
                      .want_cas = cas,
                      .value_max = 1u << 20};
  int rc = mcr__text_get_fast(b, len, &g);
  if (rc == MCR_OK)
    *it = (mcr_item_t){.value = b + g.value_off,
                       .value_len = g.value_len,
                       .flags = g.flags,
                       .cas = g.cas,
                       .status = MCR_OK};
  if (rc == MCR_OK) {
    /* The value points into b: keep a copy for the caller. */
    static char copy[256];
    cr_assert(it->value >= b && it->value + it->value_len <= b + len);
    cr_assert_leq(it->value_len, sizeof copy);
    memcpy(copy, it->value, it->value_len);
    it->value = copy;
  }
  free(b);
  return rc;
}

typedef struct {
  const char* key;
  const char* reply;
  bool cas;
  const char* value;
  uint32_t flags;
  uint64_t cas_unique;
} good_reply_t;

static const good_reply_t good_replies[] = {
    {"k", "VALUE k 5 10\r\n0123456789\r\nEND\r\n", false, "0123456789", 5, 0},
    {"k", "VALUE k 0 0\r\n\r\nEND\r\n", false, "", 0, 0},
    {"key:8by", "VALUE key:8by 1 3 77\r\nabc\r\nEND\r\n", true, "abc", 1, 77},
    {"sixteen-byte-key",
     "VALUE sixteen-byte-key 4294967295 4\r\nab\r\n\r\nEND\r\n", false,
     "ab\r\n", 4294967295u, 0},
    /* A value that holds the trailer itself. */
    {"k", "VALUE k 0 7\r\n\r\nEND\r\n\r\nEND\r\n", false, "\r\nEND\r\n", 0, 0},
    {"k", "VALUE k 00 03 0012\r\nxyz\r\nEND\r\n", true, "xyz", 0, 12},
    {"k", "VALUE k 0 1 9999999999999999999\r\nz\r\nEND\r\n", true, "z", 0,
     9999999999999999999ull},
};
#define NGOOD (sizeof good_replies / sizeof good_replies[0])

Test(get_fast, every_prefix_and_extra_bytes) {
  for (size_t r = 0; r < NGOOD; r++) {
    const good_reply_t* g = &good_replies[r];
    size_t len = strlen(g->reply);
    mcr_item_t it;
    for (size_t l = 0; l < len; l++)
      cr_assert_eq(fast(g->reply, l, g->key, g->cas, &it), -1,
                   "reply %zu: prefix of %zu bytes accepted", r, l);
    cr_assert_eq(fast(g->reply, len, g->key, g->cas, &it), MCR_OK,
                 "reply %zu refused", r);
    cr_assert_eq(it.status, MCR_OK);
    cr_assert_eq(it.value_len, strlen(g->value), "reply %zu", r);
    cr_assert(memcmp(it.value, g->value, it.value_len) == 0, "reply %zu", r);
    cr_assert_eq(it.flags, g->flags, "reply %zu", r);
    cr_assert_eq(it.cas, g->cas_unique, "reply %zu", r);
    /* Any byte after the reply is the next reply's: not this one. */
    char more[256];
    snprintf(more, sizeof more, "%sEND\r\n", g->reply);
    cr_assert_eq(fast(more, len + 1, g->key, g->cas, &it), -1);
    cr_assert_eq(fast(more, len + 5, g->key, g->cas, &it), -1);
  }
  mcr_item_t it;
  cr_assert_eq(fast("END\r\n", 5, "k", false, &it), MCR_MISS);
  cr_assert_eq(fast("END\r\n", 4, "k", false, &it), -1);
  cr_assert_eq(fast("END\r\nEND\r\n", 10, "k", false, &it), -1);
  cr_assert_eq(fast("END\r\nVALUE k 0 1\r\nv\r\nEND\r\n", 27, "k", false, &it),
               -1);
}

Test(get_fast, stale_bytes_past_len_are_never_used) {
  /* The receive buffer still holds an earlier, complete reply after the
   * bytes of this one: a check that looked past len would accept it. */
  const char* old = "VALUE k 5 10\r\nAAAAAAAAAA\r\nEND\r\n";
  const char* now = "VALUE k 5 10\r\nBBBBBBBBBB\r\nEND\r\n";
  size_t len = strlen(old);
  char buf[64];
  for (size_t l = 0; l < len; l++) {
    memcpy(buf, old, len);
    memcpy(buf, now, l);
    mcr__get_ctx_t g = {.key = "k", .key_len = 1, .value_max = 1u << 20};
    cr_assert_eq(mcr__text_get_fast(buf, l, &g), -1, "accepted %zu bytes", l);
  }
}

/* Replies the fast check must leave to the general parser, and what the
 * client must then return. closes: the connection is dropped. */
typedef struct {
  const char* what;
  const char* reply;
  bool gets;
  int rc;
  bool closes;
} bad_reply_t;

static const bad_reply_t bad_replies[] = {
    {"trailer not END", "VALUE k 0 3\r\nabc\r\nENX\r\n", false, MCR_EPROTO,
     true},
    {"trailer with a space", "VALUE k 0 3\r\nabc\r\nEND \r\n", false,
     MCR_EPROTO, true},
    {"data longer than bytes", "VALUE k 0 3\r\nabcd\r\nEND\r\n", false,
     MCR_EPROTO, true},
    {"data shorter than bytes", "VALUE k 0 4\r\nabc\r\nEND\r\n", false,
     MCR_EPROTO, true},
    {"other key", "VALUE x 0 3\r\nabc\r\nEND\r\n", false, MCR_EPROTO, true},
    {"longer key", "VALUE kk 0 3\r\nabc\r\nEND\r\n", false, MCR_EPROTO, true},
    {"key case", "VALUE K 0 3\r\nabc\r\nEND\r\n", false, MCR_EPROTO, true},
    {"two spaces", "VALUE k  0 3\r\nabc\r\nEND\r\n", false, MCR_EPROTO, true},
    {"flags over 32 bits", "VALUE k 4294967296 3\r\nabc\r\nEND\r\n", false,
     MCR_EPROTO, true},
    {"negative bytes", "VALUE k 0 -3\r\nabc\r\nEND\r\n", false, MCR_EPROTO,
     true},
    {"bare newline", "VALUE k 0 3\nabc\r\nEND\r\n", false, MCR_EPROTO, true},
    {"two bare newlines", "VALUE k 0 3\n\nabc\r\nEND\r\n", false, MCR_EPROTO,
     true},
    {"cr without newline", "VALUE k 0 3\rXabc\r\nEND\r\n", false, MCR_EPROTO,
     true},
    {"junk after bytes", "VALUE k 0 3XYabc\r\nEND\r\n", false, MCR_EPROTO,
     true},
    {"trailing space", "VALUE k 0 3 \r\nabc\r\nEND\r\n", false, MCR_EPROTO,
     true},
    {"gets without cas", "VALUE k 0 3\r\nabc\r\nEND\r\n", true, MCR_EPROTO,
     true},
    {"cas over 64 bits", "VALUE k 0 3 18446744073709551616\r\nabc\r\nEND\r\n",
     true, MCR_EPROTO, true},
    {"server error", "SERVER_ERROR out of memory\r\n", false, MCR_ESERVERERR,
     false},
    {"client error", "CLIENT_ERROR bad command line format\r\n", false,
     MCR_ECLIENTERR, false},
    {"error", "ERROR\r\n", false, MCR_ESERVERCMD, false},
    {"garbage", "VALUES k 0 3\r\nabc\r\nEND\r\n", false, MCR_EPROTO, true},
    /* Complete and right, but not the common form: the general parser
     * takes them. */
    {"20-digit cas", "VALUE k 0 3 18446744073709551615\r\nabc\r\nEND\r\n", true,
     MCR_OK, false},
    {"a reply too many", "VALUE k 0 3\r\nabc\r\nEND\r\nEND\r\n", false, MCR_OK,
     true},
};
#define NBAD (sizeof bad_replies / sizeof bad_replies[0])

Test(get_fast, refuses_what_it_must_not_decide) {
  for (size_t r = 0; r < NBAD; r++) {
    mcr_item_t it;
    cr_assert_eq(fast(bad_replies[r].reply, strlen(bad_replies[r].reply), "k",
                      bad_replies[r].gets, &it),
                 -1, "%s: decided by the fast check", bad_replies[r].what);
  }
}

/* A client of a fake server answering `script`, every reply split after
 * split_at bytes (0: whole), with node failure tracking off. */
static mcr_client_t* scripted_client(const char* const* script, int split_at,
                                     fake_t** f) {
  *f = fake_start(&(fake_opts_t){.mode = FAKE_SCRIPT,
                                 .script = script,
                                 .split_at = split_at,
                                 .split_us = 3000});
  mcr_client_opts_t o = opts_default();
  o.failure_limit = 0;
  return client_new(fake_servers_string(*f), &o);
}

/* One get (or gets) of "k" from a fake that answers `reply`, then `next`,
 * optionally splitting every reply after split_at bytes. Returns the
 * status; *conns is the number of connections after a second get. */
static int get_via_fake(const char* reply, bool gets, int split_at,
                        mcr_item_t* out, char* value, size_t cap, int* conns) {
  const char* script[] = {reply, "END\r\n", NULL};
  fake_t* f;
  mcr_client_t* c = scripted_client(script, split_at, &f);
  int rc =
      gets ? mcr_client_gets(c, "k", 1, out) : mcr_client_get(c, "k", 1, out);
  if (rc == MCR_OK) {
    cr_assert_leq(out->value_len, cap);
    memcpy(value, out->value, out->value_len);
  }
  mcr_item_t it2;
  int rc2 = mcr_client_get(c, "k", 1, &it2);
  cr_assert_eq(rc2, MCR_MISS, "second get: %s (%s)", mcr_err_name(rc2),
               mcr_client_last_error(c));
  *conns = fake_connections(f);
  mcr_client_free(c);
  fake_stop(f);
  return rc;
}

Test(get_fast, malformed_replies_through_the_client, .timeout = 60) {
  for (size_t r = 0; r < NBAD; r++) {
    const bad_reply_t* b = &bad_replies[r];
    mcr_item_t it;
    char value[64];
    int conns;
    int rc =
        get_via_fake(b->reply, b->gets, 0, &it, value, sizeof value, &conns);
    cr_assert_eq(rc, b->rc, "%s: got %d (%s)", b->what, rc,
                 rc < 0 ? mcr_err_name(rc) : mcr_status_name(rc));
    cr_assert_eq(conns, b->closes ? 2 : 1, "%s: %d connections", b->what,
                 conns);
    if (rc == MCR_OK)
      cr_assert(it.value_len == 3 && memcmp(value, "abc", 3) == 0, "%s",
                b->what);
  }
}

Test(get_fast, reply_split_at_every_byte, .timeout = 120) {
  for (size_t r = 0; r < NGOOD; r++) {
    const good_reply_t* g = &good_replies[r];
    if (strcmp(g->key, "k") != 0)
      continue;
    size_t len = strlen(g->reply);
    for (size_t at = 1; at < len; at++) {
      mcr_item_t it;
      char value[64];
      int conns;
      int rc = get_via_fake(g->reply, g->cas, (int)at, &it, value, sizeof value,
                            &conns);
      cr_assert_eq(rc, MCR_OK, "reply %zu split at %zu: %s", r, at,
                   rc < 0 ? mcr_err_name(rc) : mcr_status_name(rc));
      cr_assert_eq(it.value_len, strlen(g->value));
      cr_assert(memcmp(value, g->value, it.value_len) == 0);
      cr_assert_eq(it.flags, g->flags);
      cr_assert_eq(it.cas, g->cas_unique);
      cr_assert_eq(conns, 1, "reply %zu split at %zu: reconnected", r, at);
    }
  }
  /* A malformed reply split anywhere is still refused, and a miss split
   * anywhere is still a miss. */
  const char* bad = "VALUE k 0 3\r\nabc\r\nENX\r\n";
  for (size_t at = 1; at < strlen(bad); at++) {
    mcr_item_t it;
    char value[64];
    int conns;
    cr_assert_eq(
        get_via_fake(bad, false, (int)at, &it, value, sizeof value, &conns),
        MCR_EPROTO, "split at %zu", at);
    cr_assert_eq(conns, 2);
  }
  for (int at = 1; at < 5; at++) {
    mcr_item_t it;
    char value[8];
    int conns;
    cr_assert_eq(
        get_via_fake("END\r\n", false, at, &it, value, sizeof value, &conns),
        MCR_MISS);
    cr_assert_eq(conns, 1);
  }
}

Test(get_fast, stale_buffer_then_split_reply, .timeout = 60) {
  /* A full reply first fills the receive buffer; the next one arrives in
   * two parts, so after the first receive the buffer's tail still holds the
   * previous reply's bytes. */
  const char* a = "VALUE k 0 10\r\nAAAAAAAAAA\r\nEND\r\n";
  const char* b = "VALUE k 0 10\r\nBBBBBBBBBB\r\nEND\r\n";
  for (size_t at = 1; at < strlen(b); at++) {
    const char* script[] = {a, b, NULL};
    fake_t* f = fake_start(&(fake_opts_t){.mode = FAKE_SCRIPT,
                                          .script = script,
                                          .split_at = (int)at,
                                          .split_us = 3000});
    mcr_client_t* c = client_new(fake_servers_string(f), NULL);
    mcr_item_t it;
    assert_rc(mcr_client_get(c, "k", 1, &it), MCR_OK);
    assert_value(it, "AAAAAAAAAA", 10);
    assert_rc(mcr_client_get(c, "k", 1, &it), MCR_OK);
    assert_value(it, "BBBBBBBBBB", 10);
    cr_assert_eq(fake_connections(f), 1);
    mcr_client_free(c);
    fake_stop(f);
  }
}

Test(get_fast, values_around_the_receive_buffer_edge, .timeout = 60) {
  /* The first receive takes at most 16 KiB (conn.c's initial buffer): a
   * reply of 16383, 16384 or 16385 bytes is whole, exactly whole, or one
   * byte short after it. "VALUE edge 4 NNNNN\r\n" + data + "\r\nEND\r\n" is
   * 27 + N bytes for a five-digit N. */
  mcd_t m;
  mcd_start(&m, NULL);
  mcr_client_t* c = client_new(mcd_servers_string(&m), NULL);
  size_t cap = 1 << 17;
  char* v = malloc(cap);
  cr_assert_not_null(v);
  for (size_t i = 0; i < cap; i++)
    v[i] = (char)(i * 31 + 7);
  size_t sizes[64], ns = 0;
  for (size_t n = 16384 - 27 - 8; n <= 16384 - 27 + 8; n++)
    sizes[ns++] = n;
  sizes[ns++] = 0;
  sizes[ns++] = 1;
  sizes[ns++] = 4096;
  sizes[ns++] = 32768 - 27;
  sizes[ns++] = cap - 64; /* v + i + n stays inside v */
  for (size_t i = 0; i < ns; i++) {
    size_t n = sizes[i];
    assert_rc(mcr_client_set(c, "edge", 4, v + i, n, 4, 0, 0), MCR_OK);
    mcr_item_t it;
    assert_rc(mcr_client_get(c, "edge", 4, &it), MCR_OK);
    assert_value(it, v + i, n);
    cr_assert_eq(it.flags, 4);
    assert_rc(mcr_client_gets(c, "edge", 4, &it), MCR_OK);
    assert_value(it, v + i, n);
    cr_assert_neq(it.cas, 0);
    assert_rc(mcr_client_gat(c, "edge", 4, 100, &it), MCR_OK);
    assert_value(it, v + i, n);
  }
  /* Every call of the loop ran on the first connection. */
  mcr_client_stats_t st;
  mcr_client_stats(c, &st);
  cr_assert_eq(st.reconnects, 0);
  free(v);
  mcr_client_free(c);
  mcd_stop(&m);
}

Test(get_fast, a_fast_hit_resets_the_failure_count, .timeout = 30) {
  /* failure_limit 2: two timeouts in a row mark the node down, but a hit
   * between them (read by the fast path) means the node answers. */
  const char* hit = "VALUE k 0 1\r\nv\r\nEND\r\n";
  const char* script[] = {"", hit, "", hit, NULL};
  fake_t* f = fake_start(&(fake_opts_t){.mode = FAKE_SCRIPT, .script = script});
  mcr_client_opts_t o = opts_default();
  o.io_timeout_ms = 100;
  o.failure_limit = 2;
  o.retry_timeout_ms = 60000;
  mcr_client_t* c = client_new(fake_servers_string(f), &o);
  mcr_item_t it;
  assert_rc(mcr_client_get(c, "k", 1, &it), MCR_ETIMEOUT);
  assert_rc(mcr_client_get(c, "k", 1, &it), MCR_OK);
  assert_rc(mcr_client_get(c, "k", 1, &it), MCR_ETIMEOUT);
  assert_rc(mcr_client_get(c, "k", 1, &it), MCR_OK);
  assert_value(it, "v", 1);
  mcr_client_free(c);
  fake_stop(f);
}

/* ------------------------------------------------------------ multi-get */

/* get_multi (or gets_multi) of "a", "bb", "ccc" from a fake answering
 * `reply`, each reply split after split_at bytes (0: whole). Returns the
 * hit count. */
static int multi_via_fake(const char* reply, bool gets, int split_at,
                          mcr_item_t items[3], char values[3][16]) {
  const char* script[] = {reply, NULL};
  fake_t* f;
  mcr_client_t* c = scripted_client(script, split_at, &f);
  const char* keys[3] = {"a", "bb", "ccc"};
  size_t lens[3] = {1, 2, 3};
  int hits = -1;
  /* Twice: the second call's first receive lands in a buffer that still
   * holds the whole first reply after it. */
  for (int round = 0; round < 2; round++) {
    int h = gets ? t_gets_multi(c, 3, keys, lens, items)
                 : t_get_multi(c, 3, keys, lens, items);
    cr_assert(round == 0 || h == hits, "second call: %d hits, first %d", h,
              hits);
    hits = h;
  }
  for (int i = 0; i < 3; i++)
    if (items[i].status == MCR_OK) {
      cr_assert_lt(items[i].value_len, 16);
      memcpy(values[i], items[i].value, items[i].value_len);
      values[i][items[i].value_len] = '\0';
    }
  mcr_client_free(c);
  fake_stop(f);
  return hits;
}

Test(multi_fast, hits_and_misses_split_at_every_byte, .timeout = 120) {
  /* "bb" is a miss (no VALUE line); "ccc" has an empty value. */
  const char* reply = "VALUE a 1 2\r\nxx\r\nVALUE ccc 3 0\r\n\r\nEND\r\n";
  const char* reply_cas =
      "VALUE a 1 2 7\r\nxx\r\nVALUE ccc 3 0 9\r\n\r\nEND\r\n";
  for (int cas = 0; cas < 2; cas++) {
    const char* r = cas ? reply_cas : reply;
    for (size_t at = 0; at < strlen(r); at++) {
      mcr_item_t it[3];
      char v[3][16];
      int hits = multi_via_fake(r, cas, (int)at, it, v);
      cr_assert_eq(hits, 2, "cas %d split at %zu: %d hits", cas, at, hits);
      cr_assert_eq(it[0].status, MCR_OK);
      cr_assert_str_eq(v[0], "xx");
      cr_assert_eq(it[0].flags, 1);
      cr_assert_eq(it[0].cas, cas ? 7u : 0u);
      cr_assert_eq(it[1].status, MCR_MISS);
      cr_assert_eq(it[2].status, MCR_OK);
      cr_assert_eq(it[2].value_len, 0);
      cr_assert_eq(it[2].flags, 3);
      cr_assert_eq(it[2].cas, cas ? 9u : 0u);
    }
  }
}

Test(multi_fast, malformed_replies_fail_the_node) {
  static const struct {
    const char* what;
    const char* reply;
    bool gets;
  } bad[] = {
      {"key not asked", "VALUE zz 0 1\r\nx\r\nEND\r\n", false},
      {"keys out of order", "VALUE ccc 0 1\r\nx\r\nVALUE a 0 1\r\ny\r\nEND\r\n",
       false},
      {"same key twice", "VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\ny\r\nEND\r\n",
       false},
      {"other key, same length", "VALUE z 0 1\r\nx\r\nEND\r\n", false},
      {"data too long", "VALUE a 0 2\r\nxxx\r\nEND\r\n", false},
      {"data not ended by crlf", "VALUE a 0 2\r\nxxX\nEND\r\n", false},
      {"junk instead of crlf", "VALUE a 0 1XYx\r\nEND\r\n", false},
      {"data too short", "VALUE a 0 4\r\nxx\r\nEND\r\n", false},
      {"flags over 32 bits", "VALUE a 4294967296 1\r\nx\r\nEND\r\n", false},
      {"bare newline", "VALUE a 0 1\nx\r\nEND\r\n", false},
      {"junk after bytes", "VALUE a 0 1X\r\nx\r\nEND\r\n", false},
      {"gets without cas", "VALUE a 0 1\r\nx\r\nEND\r\n", true},
      {"cas over 64 bits", "VALUE a 0 1 18446744073709551616\r\nx\r\nEND\r\n",
       true},
      {"garbage line", "VALUES a 0 1\r\nx\r\nEND\r\n", false},
  };
  for (size_t r = 0; r < sizeof bad / sizeof bad[0]; r++) {
    mcr_item_t it[3];
    char v[3][16];
    int hits = multi_via_fake(bad[r].reply, bad[r].gets, 0, it, v);
    cr_assert_eq(hits, 0, "%s: %d hits", bad[r].what, hits);
    for (int i = 0; i < 3; i++)
      cr_assert_eq(it[i].status, MCR_EPROTO, "%s: key %d status %d",
                   bad[r].what, i, it[i].status);
  }
  /* A 20-digit cas is right, only not the fast path's. */
  mcr_item_t it[3];
  char v[3][16];
  cr_assert_eq(multi_via_fake("VALUE a 0 1 18446744073709551615\r\nx\r\n"
                              "VALUE bb 0 1 1\r\ny\r\nEND\r\n",
                              true, 0, it, v),
               2);
  cr_assert_eq(it[0].cas, UINT64_MAX);
  cr_assert_str_eq(v[1], "y");
}

Test(multi_fast, nothing_after_the_last_end_is_taken) {
  /* Every request line is answered by its END: a VALUE after it belongs
   * to no request (the stream is out of sync) and must not become a hit. */
  mcr_item_t it[3];
  char v[3][16];
  cr_assert_eq(multi_via_fake("END\r\nVALUE a 0 1\r\nx\r\n", false, 0, it, v),
               0);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(it[i].status, MCR_MISS, "key %d", i);
}

Test(multi_fast, stale_buffer_then_split_reply, .timeout = 60) {
  /* The second reply has the first one's shape up to the end of a's data,
   * then differs: a parser that looked past the bytes received would mix
   * in the first reply's tail. */
  const char* first = "VALUE a 1 2\r\nxx\r\nVALUE ccc 3 0\r\n\r\nEND\r\n";
  const char* second = "VALUE a 1 2\r\nyy\r\nVALUE bb 5 1\r\nz\r\nEND\r\n";
  const char* keys[3] = {"a", "bb", "ccc"};
  size_t lens[3] = {1, 2, 3};
  for (size_t at = 1; at < strlen(second); at++) {
    const char* script[] = {first, second, NULL};
    fake_t* f = fake_start(&(fake_opts_t){.mode = FAKE_SCRIPT,
                                          .script = script,
                                          .split_at = (int)at,
                                          .split_us = 3000});
    mcr_client_t* c = client_new(fake_servers_string(f), NULL);
    mcr_item_t it[3];
    cr_assert_eq(t_get_multi(c, 3, keys, lens, it), 2);
    cr_assert_eq(t_get_multi(c, 3, keys, lens, it), 2, "split at %zu", at);
    assert_value(it[0], "yy", 2);
    cr_assert_eq(it[1].status, MCR_OK, "split at %zu", at);
    assert_value(it[1], "z", 1);
    cr_assert_eq(it[1].flags, 5);
    cr_assert_eq(it[2].status, MCR_MISS, "split at %zu", at);
    cr_assert_eq(fake_connections(f), 1);
    mcr_client_free(c);
    fake_stop(f);
  }
}
