/* test_key.c — the key validation table.
 *
 * A text-protocol key is 1..250 bytes with no byte <= 0x20 and no 0x7f;
 * bytes >= 0x80 are allowed. The table below runs through mcr_key_check and
 * then through every keyed client call. Invalid keys must fail with
 * MCR_EKEY before anything is sent: the client talks to a recording fake
 * that relays to a real memcached, and the tests check that the fake
 * received no byte at all, then that a valid call afterwards arrives as the
 * very first bytes on the wire (no partial request was left behind). Valid
 * keys, including the 250-byte and high-byte ones, must round-trip through
 * the real server. Last, the base64 coding of binary meta keys.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "internal.h" /* mcr__base64_* */
#include "support.h"

typedef struct {
  const char* what;
  const char* key;
  size_t len;
  int valid;
} key_row_t;

static char k250[251], k251[252];

static key_row_t rows[] = {
    {"empty", "", 0, 0},
    {"one byte", "a", 1, 1},
    {"250 bytes", k250, 250, 1},
    {"251 bytes", k251, 251, 0},
    {"space inside", "a b", 3, 0},
    {"leading space", " ab", 3, 0},
    {"trailing space", "ab ", 3, 0},
    {"tab", "a\tb", 3, 0},
    {"carriage return", "a\rb", 3, 0},
    {"line feed", "a\nb", 3, 0},
    {"crlf at end", "ab\r\n", 4, 0},
    {"NUL inside", "a\0b", 3, 0},
    {"NUL alone", "\0", 1, 0},
    {"DEL 0x7f", "a\x7f", 2, 0},
    {"0x01", "\x01", 1, 0},
    {"0x1f", "a\x1f", 2, 0},
    {"vertical tab", "a\vb", 3, 0},
    {"form feed", "a\fb", 3, 0},
    {"0x80", "a\x80", 2, 1},
    {"0xff", "\xff", 1, 1},
    {"utf-8", "cl\xc3\xa9", 4, 1},
    {"punctuation", "a:b/c?d=e&f#g!~", 15, 1},
    {"0x21 lowest printable", "!", 1, 1},
    {"0x7e highest ascii", "~", 1, 1},
};
#define NROWS (sizeof rows / sizeof rows[0])

static mcd_t mcd;
static fake_t* fake;
static mcr_client_t* client;

static void fill_keys(void) {
  memset(k250, 'k', 250);
  memset(k251, 'k', 251);
}

static void setup(void) {
  fill_keys();
  mcd_start(&mcd, NULL);
  fake = fake_start(&(fake_opts_t){.mode = FAKE_PROXY, .backend = &mcd});
  client = client_new(fake_servers_string(fake), NULL);
}

static void teardown(void) {
  mcr_client_free(client);
  fake_stop(fake);
  mcd_stop(&mcd);
}

Test(key, check_table, .init = fill_keys) {
  for (size_t i = 0; i < NROWS; i++) {
    int rc = mcr_key_check(rows[i].key, rows[i].len);
    cr_assert_eq(rc, rows[i].valid ? 0 : MCR_EKEY, "%s: got %d", rows[i].what,
                 rc);
  }
}

Test(key, check_reads_exactly_len_bytes, .init = fill_keys) {
  /* The length rules, not the NUL: "abc" with len 2 is the valid key "ab",
   * and a 251-byte buffer checked with len 250 is valid. */
  cr_assert_eq(mcr_key_check("ab c", 2), 0);
  cr_assert_eq(mcr_key_check(k251, 250), 0);
  cr_assert_eq(mcr_key_check(NULL, 0), MCR_EKEY);
}

/* The rule as the documentation states it, one byte at a time. */
static int key_rule(const unsigned char* k, size_t len) {
  if (len == 0 || len > 250)
    return MCR_EKEY;
  for (size_t i = 0; i < len; i++)
    if (k[i] <= 0x20 || k[i] == 0x7f)
      return MCR_EKEY;
  return 0;
}

/* The byte values on both sides of every boundary of the rule. */
static const unsigned char key_probe_bytes[] = {0x00, 0x01, 0x09, 0x0a, 0x0d,
                                                0x1f, 0x20, 0x21, 0x7e, 0x7f,
                                                0x80, 0xa0, 0xfe, 0xff};

Test(key, check_every_length_position_and_byte) {
  /* mcr_key_check reads 16 (or 8) bytes at a time with overlapping tails:
   * every length and every position of a bad byte must still be seen.
   * The key ends its allocation, so a read past it fails under ASan. */
  for (size_t len = 1; len <= 251; len++) {
    unsigned char* k = malloc(len);
    cr_assert_not_null(k);
    for (size_t i = 0; i < len; i++)
      k[i] = (unsigned char)(0x21 + (i * 37) % 0xdf); /* 0x21..0xff */
    for (size_t i = 0; i < len; i++)
      if (k[i] == 0x7f)
        k[i] = 0x7e;
    cr_assert_eq(mcr_key_check((char*)k, len), key_rule(k, len), "len %zu",
                 len);
    for (size_t pos = 0; pos < len; pos++) {
      unsigned char save = k[pos];
      for (size_t b = 0; b < sizeof key_probe_bytes; b++) {
        k[pos] = key_probe_bytes[b];
        cr_assert_eq(mcr_key_check((char*)k, len), key_rule(k, len),
                     "len %zu, byte 0x%02x at %zu", len, k[pos], pos);
      }
      k[pos] = save;
    }
    free(k);
  }
}

/* Every keyed call with `key`; each must return MCR_EKEY. */
static void all_calls_reject(const char* what, const char* key, size_t len) {
  mcr_item_t item;
  uint64_t v;
  const char* keys[2] = {"fine", key};
  size_t lens[2] = {4, len};
  mcr_item_t items[2];
  const int rcs[] = {
      mcr_client_set(client, key, len, "v", 1, 0, 0, 0),
      mcr_client_add(client, key, len, "v", 1, 0, 0, 0),
      mcr_client_replace(client, key, len, "v", 1, 0, 0, 0),
      mcr_client_append(client, key, len, "v", 1, 0),
      mcr_client_prepend(client, key, len, "v", 1, 0),
      mcr_client_cas(client, key, len, "v", 1, 0, 0, 1, 0),
      mcr_client_set(client, key, len, "v", 1, 0, 0, MCR_CALL_NOREPLY),
      mcr_client_get(client, key, len, &item),
      mcr_client_gets(client, key, len, &item),
      mcr_client_gat(client, key, len, 10, &item),
      mcr_client_gats(client, key, len, 10, &item),
      mcr_client_delete(client, key, len, 0),
      mcr_client_incr(client, key, len, 1, &v, 0),
      mcr_client_decr(client, key, len, 1, &v, 0),
      mcr_client_touch(client, key, len, 10, 0),
      t_get_multi(client, 2, keys, lens, items),
      t_gets_multi(client, 2, keys, lens, items),
  };
  for (size_t i = 0; i < sizeof rcs / sizeof rcs[0]; i++)
    cr_assert_eq(rcs[i], MCR_EKEY, "%s: call %zu returned %d (%s)", what, i,
                 rcs[i], mcr_err_name(rcs[i]));
}

Test(key, invalid_keys_reach_no_wire, .init = setup, .fini = teardown) {
  for (size_t i = 0; i < NROWS; i++) {
    if (rows[i].valid)
      continue;
    all_calls_reject(rows[i].what, rows[i].key, rows[i].len);
    cr_assert_eq(fake_received(fake, NULL, 0), 0,
                 "%s: bytes reached the server", rows[i].what);
  }
  /* The first bytes on the wire are the valid request that follows. */
  mcr_item_t item;
  assert_rc(mcr_client_get(client, "after", 5, &item), MCR_MISS);
  char rx[64];
  fake_received(fake, rx, sizeof rx);
  cr_assert_str_eq(rx, "get after\r\n");
}

Test(key, valid_keys_round_trip, .init = setup, .fini = teardown) {
  for (size_t i = 0; i < NROWS; i++) {
    if (!rows[i].valid)
      continue;
    char val[64];
    int vl = snprintf(val, sizeof val, "value of %s", rows[i].what);
    assert_rc(mcr_client_set(client, rows[i].key, rows[i].len, val, (size_t)vl,
                             7, 0, 0),
              MCR_OK);
    mcr_item_t item;
    assert_rc(mcr_client_get(client, rows[i].key, rows[i].len, &item), MCR_OK);
    assert_value(item, val, vl);
    cr_assert_eq(item.flags, 7);
  }
  /* The server saw the 250-byte key as one key of that length. */
  size_t len;
  uint32_t flags;
  char buf[64];
  cr_assert(raw_get(&mcd, k250, buf, sizeof buf, &len, &flags));
  cr_assert_eq(len, strlen("value of 250 bytes"));
}

Test(key, invalid_key_leaves_server_counters, .init = setup, .fini = teardown) {
  uint64_t sets = mcd_stat(&mcd, "cmd_set");
  uint64_t gets = mcd_stat(&mcd, "cmd_get");
  all_calls_reject("space", "a b", 3);
  cr_assert_eq(mcd_stat(&mcd, "cmd_set"), sets);
  cr_assert_eq(mcd_stat(&mcd, "cmd_get"), gets);
}

Test(base64, round_trip_all_lengths) {
  unsigned char raw[64], back[64];
  char enc[96];
  for (size_t i = 0; i < sizeof raw; i++)
    raw[i] = (unsigned char)(i * 37);
  for (size_t len = 0; len <= sizeof raw; len++) {
    size_t e = mcr__base64_encode(raw, len, enc);
    cr_assert_eq(e, (len + 2) / 3 * 4);
    long d = mcr__base64_decode(enc, e, back);
    cr_assert_eq(d, (long)len);
    cr_assert(memcmp(raw, back, len) == 0);
  }
  cr_assert_eq(mcr__base64_decode("abc", 3, back), -1);
  cr_assert_eq(mcr__base64_decode("a=bc", 4, back), -1);
  cr_assert_eq(mcr__base64_decode("ab!c", 4, back), -1);
  char e2[8];
  cr_assert_eq(mcr__base64_encode("foo", 3, e2), 4);
  cr_assert(memcmp(e2, "Zm9v", 4) == 0);
}
