/* fuzz_meta.c — libFuzzer target for the meta-protocol reply parser.
 *
 * Meta replies carry the most structure the client parses: a two-letter
 * code, flag tokens with values (c f t h l s k O b W X Z), data blocks, and
 * in pipelines the opaque matching that charges each reply (or an error
 * line without an opaque) to a command. This target runs mg / ms / md / ma
 * / mn / me on one node and quiet pipelines over three nodes with
 * fuzzer-chosen request flags against fuzzer-chosen replies (fuzz_peer.h).
 * Besides "no crash, leak or undefined behaviour" it checks that every
 * result is a status or an MCR_E* code and that returned values and keys
 * are readable.
 *
 * Input: byte 0 picks the call, bytes 1..4 the request flags, byte 5 a
 * parameter, then the reply stream (pipelines: two length-prefixed streams
 * and the rest).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_peer.h"

static mcr_client_t* one;
static mcr_client_t* three;

static volatile uint8_t sink;

static void check_result(int rc, const mcr_meta_result_t* r) {
  if (rc < MCR_ESYS || rc > MCR_NOT_FOUND)
    abort();
  if (r->have & MCR_MR_VALUE)
    for (size_t i = 0; i < r->value_len; i++)
      sink ^= (uint8_t)r->value[i];
  if (r->have & MCR_MR_KEY)
    for (size_t i = 0; i < r->key_len; i++)
      sink ^= (uint8_t)r->key[i];
}

static void opts_from(fuzz_in_t* in, mcr_meta_opts_t* o, char op) {
  memset(o, 0, sizeof(*o));
  o->flags = fuzz_u32(in);
  uint8_t arg = fuzz_u8(in);
  o->ttl = arg;
  o->vivify_ttl = arg;
  o->recache_ttl = arg;
  o->cas = arg;
  o->opaque = arg;
  o->delta = arg;
  o->initial = arg;
  o->client_flags = arg;
  static const char ms_modes[] = "SEAPR";
  static const char ma_modes[] = "ID+-";
  if (op == 's')
    o->mode = ms_modes[arg % 5];
  else if (op == 'a')
    o->mode = ma_modes[arg % 4];
}

static void run_one(uint8_t op, fuzz_in_t* in) {
  static const char bin[] = {0, 1, 2, ' ', '\n'};
  mcr_meta_opts_t o;
  char c = "gsdanm"[op % 6];
  opts_from(in, &o, c);
  /* With the b flag the key is binary (sent base64); else a text key. */
  const char* key = (o.flags & MCR_META_BASE64) ? bin : "k0";
  size_t key_len = (o.flags & MCR_META_BASE64) ? sizeof(bin) : 2;
  fuzz_peers_t p;
  fuzz_feed(one, &p, 0, in->p, in->n);
  mcr_meta_result_t r;
  memset(&r, 0, sizeof(r));
  int rc = 0;
  const char* text;
  switch (c) {
    case 'g':
      rc = mcr_client_mg(one, key, key_len, &o, &r);
      break;
    case 's':
      rc = mcr_client_ms(one, key, key_len, "value", 5, &o, &r);
      break;
    case 'd':
      rc = mcr_client_md(one, key, key_len, &o, &r);
      break;
    case 'a':
      rc = mcr_client_ma(one, key, key_len, &o, &r);
      break;
    case 'n':
      rc = mcr_client_mn(one, 0);
      break;
    case 'm':
      rc = mcr_client_me(one, "k0", 2, &text);
      if (rc == MCR_OK)
        sink ^= (uint8_t)strlen(text);
      break;
  }
  if (c == 'n' || c == 'm')
    memset(&r, 0, sizeof(r));
  check_result(rc, &r);
  fuzz_drain(one, &p);
}

static void run_pipeline(fuzz_in_t* in) {
  static const char* const keys[] = {"k0", "k1", "k2", "k3",
                                     "k4", "k5", "k6", "k7"};
  mcr_meta_cmd_t cmds[8];
  size_t n = 1 + fuzz_u8(in) % 8;
  for (size_t i = 0; i < n; i++) {
    memset(&cmds[i], 0, sizeof(cmds[i]));
    cmds[i].op = "gsda"[fuzz_u8(in) % 4];
    cmds[i].key = keys[i];
    cmds[i].key_len = 2;
    cmds[i].value = "v";
    cmds[i].value_len = 1;
    opts_from(in, &cmds[i].opts, cmds[i].op);
    cmds[i].opts.flags &= ~MCR_META_BASE64;
  }
  const uint8_t* seg[3];
  size_t seg_len[3];
  fuzz_split(in->p, in->n, 3, seg, seg_len);
  fuzz_peers_t p;
  for (size_t i = 0; i < 3; i++)
    fuzz_feed(three, &p, i, seg[i], seg_len[i]);
  int rc = mcr_client_meta_pipeline(three, cmds, n);
  if (rc < MCR_ESYS || rc > (int)n)
    abort();
  if (rc >= 0)
    for (size_t i = 0; i < n; i++)
      check_result(cmds[i].result.status, &cmds[i].result);
  fuzz_drain(three, &p);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!one) {
    one = fuzz_client(FUZZ_ONE_NODE);
    three = fuzz_client(FUZZ_THREE_NODES);
  }
  if (size < 1)
    return 0;
  fuzz_in_t in = {data + 1, size - 1};
  if (data[0] & 0x80)
    run_pipeline(&in);
  else
    run_one(data[0], &in);
  return 0;
}
