/* fuzz_text.c — libFuzzer target for the text-protocol reply parser.
 *
 * A memcached node is a peer the client cannot trust to be well-formed: a
 * proxy bug, a desynchronised stream or a hostile server can send any
 * bytes. This target drives the real public calls (get, gets, gat, the
 * multi-key fan-out, every storage command, delete, incr/decr, touch,
 * stats, version, flush_all, verbosity, cache_memlimit, set/delete of many
 * keys) against fuzzer-chosen reply bytes (fuzz_peer.h), so every parser
 * path is reached exactly as a worker reaches it, the zstd decoding of a
 * value flagged compressed included. The property checked besides "no
 * crash, leak or undefined behaviour": a call returns either a status or a
 * negative MCR_E* code, and a hit's value lies inside memory we may read.
 *
 * Input: byte 0 picks the call, byte 1 a parameter, then the reply stream
 * (for the three-node calls, two length-prefixed streams and the rest).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_peer.h"

static mcr_client_t* one;
static mcr_client_t* three;

static const char* const keys[] = {"k0", "k1", "k2", "k3",
                                   "k4", "k5", "k6", "k7"};
static const size_t key_lens[] = {2, 2, 2, 2, 2, 2, 2, 2};

/* Touches every byte of a returned value, so ASan sees a bad pointer. */
static volatile uint8_t sink;
static void touch_item(const mcr_item_t* it) {
  if (it->status == MCR_OK)
    for (size_t i = 0; i < it->value_len; i++)
      sink ^= (uint8_t)it->value[i];
}

static void check_rc(int rc) {
  if (rc < MCR_ESYS || rc > MCR_NOT_FOUND + 1000) /* positive: a count */
    abort();
}

static void run_one(uint8_t op, uint8_t arg, const uint8_t* d, size_t n) {
  fuzz_peers_t p;
  fuzz_feed(one, &p, 0, d, n);
  mcr_item_t it;
  mcr_item_t items[3];
  uint64_t num;
  int st[3];
  const mcr_stat_t* stats;
  const char* ver;
  unsigned cflags = (arg & 0x80) ? MCR_CALL_NOREPLY : 0;
  int rc = 0;
  switch (op % 20) {
    case 0:
      rc = mcr_client_get(one, "k0", 2, &it);
      touch_item(&it);
      break;
    case 1:
      rc = mcr_client_gets(one, "k0", 2, &it);
      touch_item(&it);
      break;
    case 2:
      rc = mcr_client_gat(one, arg, "k0", 2, &it);
      touch_item(&it);
      break;
    case 3:
      rc = mcr_client_gats(one, arg, "k0", 2, &it);
      touch_item(&it);
      break;
    case 4:
      rc = mcr_client_get_multi(one, 1 + arg % 3, keys, key_lens, items);
      for (int i = 0; i < 1 + arg % 3; i++)
        touch_item(&items[i]);
      break;
    case 5:
      rc = mcr_client_gets_multi(one, 1 + arg % 3, keys, key_lens, items);
      for (int i = 0; i < 1 + arg % 3; i++)
        touch_item(&items[i]);
      break;
    case 6:
      rc = mcr_client_set(one, "k0", 2, "value", 5, arg & 0x7f, 0, cflags);
      break;
    case 7:
      rc = mcr_client_add(one, "k0", 2, "value", 5, 0, arg, cflags);
      break;
    case 8:
      rc = mcr_client_cas(one, "k0", 2, "value", 5, 0, 0, arg, cflags);
      break;
    case 9:
      rc = mcr_client_append(one, "k0", 2, "v", 1, cflags);
      break;
    case 10:
      rc = mcr_client_delete(one, "k0", 2, cflags);
      break;
    case 11:
      rc = mcr_client_incr(one, "k0", 2, arg, &num, cflags);
      break;
    case 12:
      rc = mcr_client_decr(one, "k0", 2, arg, &num, cflags);
      break;
    case 13:
      rc = mcr_client_touch(one, "k0", 2, arg, cflags);
      break;
    case 14:
      rc = mcr_client_stats_node(one, 0, (arg & 1) ? "items" : NULL, &stats);
      for (int i = 0; i < rc; i++)
        sink ^= (uint8_t)(strlen(stats[i].name) + strlen(stats[i].value));
      break;
    case 15:
      rc = mcr_client_version(one, 0, &ver);
      if (rc == 0)
        sink ^= (uint8_t)strlen(ver);
      break;
    case 16:
      rc = mcr_client_flush_all(one, arg, cflags);
      break;
    case 17:
      rc = mcr_client_verbosity(one, arg & 3, cflags);
      break;
    case 18:
      rc = mcr_client_cache_memlimit(one, 64 + arg, cflags);
      break;
    case 19: {
      const void* vals[3] = {"a", "bb", "ccc"};
      size_t vlens[3] = {1, 2, 3};
      if (arg & 1)
        rc = mcr_client_set_multi(one, 3, keys, key_lens, vals, vlens, 0, 0, st,
                                  cflags);
      else
        rc = mcr_client_delete_multi(one, 3, keys, key_lens, st, cflags);
      break;
    }
  }
  check_rc(rc);
  fuzz_drain(one, &p);
}

static void run_three(uint8_t op, uint8_t arg, const uint8_t* d, size_t n) {
  const uint8_t* seg[3];
  size_t seg_len[3];
  fuzz_split(d, n, 3, seg, seg_len);
  fuzz_peers_t p;
  for (size_t i = 0; i < 3; i++)
    fuzz_feed(three, &p, i, seg[i], seg_len[i]);
  mcr_item_t items[8];
  int st[8];
  size_t k = 1 + arg % 8;
  int rc = 0;
  switch (op % 4) {
    case 0:
      rc = mcr_client_get_multi(three, k, keys, key_lens, items);
      for (size_t i = 0; i < k; i++)
        touch_item(&items[i]);
      break;
    case 1:
      rc = mcr_client_gets_multi(three, k, keys, key_lens, items);
      for (size_t i = 0; i < k; i++)
        touch_item(&items[i]);
      break;
    case 2: {
      const void* vals[8] = {"a", "b", "c", "d", "e", "f", "g", "h"};
      size_t vlens[8] = {1, 1, 1, 1, 1, 1, 1, 1};
      rc = mcr_client_set_multi(three, k, keys, key_lens, vals, vlens, 0, 0, st,
                                0);
      break;
    }
    case 3:
      rc = mcr_client_delete_multi(three, k, keys, key_lens, st, 0);
      break;
  }
  check_rc(rc);
  fuzz_drain(three, &p);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!one) {
    one = fuzz_client(FUZZ_ONE_NODE);
    three = fuzz_client(FUZZ_THREE_NODES);
  }
  if (size < 2)
    return 0;
  if (data[0] & 0x80)
    run_three(data[0], data[1], data + 2, size - 2);
  else
    run_one(data[0], data[1], data + 2, size - 2);
  return 0;
}
