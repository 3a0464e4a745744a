/* fuzz_text.c — libFuzzer target for the text-protocol decoders.
 *
 * A memcached node is a peer the client cannot trust to be well-formed: a
 * proxy bug, a desynchronised stream or a hostile server can send any
 * bytes. This target hands fuzzer bytes straight to the pure decoders of
 * lib/codec_text.c, in fuzzer-chosen chunks (fuzz_decode.h drives them as
 * the engine does): the one-key get, the one-line replies (store, delete,
 * touch, incr/decr, OK, VERSION, MN), stats, a multi-key get of 1..8 keys
 * and a batch of 1..8 commands; and value.c's zstd decoding of a value
 * flagged compressed. Besides "no crash, leak or undefined behaviour",
 * each result must keep the decoder contract, and every offset a decoder
 * records must lie inside the bytes received.
 *
 * Input: byte 0 picks the decoder, byte 1 a parameter, byte 2 how many
 * chunk sizes follow (0..7: 0 feeds the reply whole), then those sizes,
 * then the reply.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_decode.h"

static const char* const keys[] = {"k0", "k1", "k2", "k3",
                                   "k4", "k5", "k6", "k7"};
static const size_t key_lens[] = {2, 2, 2, 2, 2, 2, 2, 2};

static mcr_client_t* client; /* for value.c (never connects) */

static void decode_get(uint8_t arg, const uint8_t* d, size_t n,
                       const uint8_t* sz, size_t nsz) {
  mcr__get_ctx_t g = {.key = "k0",
                      .key_len = 2,
                      .want_cas = arg & 1,
                      .value_max = FUZZ_VALUE_MAX};
  fuzz_reply_t r;
  fuzz_run(&r, mcr__text_get_decode, &g, d, n, sz, nsz);
  if (r.rc == MCR__DONE && g.status != MCR_OK && g.status != MCR_MISS)
    abort();
  if (r.rc == MCR__DONE && g.status == MCR_OK &&
      (!fuzz_inside(&r, g.value_off, g.value_len) ||
       g.value_len > FUZZ_VALUE_MAX))
    abort();
  free(r.buf);
}

static void decode_line(uint8_t arg, const uint8_t* d, size_t n,
                        const uint8_t* sz, size_t nsz) {
  mcr__line_ctx_t x = {.kind = (mcr__reply_kind_t)(arg % 7)};
  fuzz_reply_t r;
  fuzz_run(&r, mcr__text_line_decode, &x, d, n, sz, nsz);
  if (r.rc == MCR__DONE && (x.status < MCR_OK || x.status > MCR_NOT_FOUND))
    abort();
  if (r.rc == MCR__DONE && x.kind == MCR__R_VERSION &&
      !fuzz_inside(&r, x.text_off, x.text_len))
    abort();
  free(r.buf);
}

static void decode_stats(const uint8_t* d, size_t n, const uint8_t* sz,
                         size_t nsz) {
  mcr__stats_ctx_t x = {0};
  fuzz_reply_t r;
  fuzz_run(&r, mcr__text_stats_decode, &x, d, n, sz, nsz);
  for (size_t i = 0; i < x.n; i++)
    if (!fuzz_inside(&r, x.ent[i].name_off, x.ent[i].name_len) ||
        !fuzz_inside(&r, x.ent[i].value_off, x.ent[i].value_len) ||
        x.ent[i].name_len == 0)
      abort();
  if (x.n > MCR__STATS_MAX)
    abort();
  free(x.ent);
  free(r.buf);
}

static void decode_mget(uint8_t arg, const uint8_t* d, size_t n,
                        const uint8_t* sz, size_t nsz) {
  size_t k = 1 + arg % 8;
  size_t next[8], value_off[8];
  mcr_item_t items[8];
  for (size_t i = 0; i < k; i++) {
    next[i] = i + 1 < k ? i + 1 : SIZE_MAX;
    items[i] = (mcr_item_t){.status = MCR_MISS};
  }
  mcr__mget_ctx_t g = {.cmd = (mcr__get_t)((arg >> 3) % 4),
                       .keys = keys,
                       .key_lens = key_lens,
                       .next = next,
                       .items = items,
                       .value_off = value_off,
                       .value_max = FUZZ_VALUE_MAX,
                       .first = 0};
  mcr_buf_t req = {0};
  if (mcr__text_mget_request(&req, &g, (int64_t)arg - 128))
    abort();
  if (g.lines != 1) /* eight short keys fit one request line */
    abort();
  free(req.data);
  fuzz_reply_t r;
  fuzz_run(&r, mcr__text_mget_decode, &g, d, n, sz, nsz);
  for (size_t i = 0; i < k; i++) {
    if (items[i].status != MCR_OK && items[i].status != MCR_MISS)
      abort();
    if (r.rc == MCR__DONE && items[i].status == MCR_OK &&
        !fuzz_inside(&r, value_off[i], items[i].value_len))
      abort();
  }
  free(r.buf);
}

static void decode_batch(uint8_t arg, const uint8_t* d, size_t n,
                         const uint8_t* sz, size_t nsz) {
  size_t k = 1 + arg % 8;
  size_t next[8];
  int statuses[8];
  for (size_t i = 0; i < k; i++) {
    next[i] = i + 1 < k ? i + 1 : SIZE_MAX;
    statuses[i] = INT32_MIN;
  }
  mcr__batch_ctx_t b = {.next = next, .statuses = statuses, .cursor = 0};
  fuzz_reply_t r;
  fuzz_run(&r, mcr__text_batch_decode, &b, d, n, sz, nsz);
  for (size_t i = 0; i < k; i++)
    if (statuses[i] != INT32_MIN &&
        (statuses[i] < MCR_ESERVERERR || statuses[i] > MCR_NOT_FOUND))
      abort();
  free(r.buf);
}

/* value.c on a value flagged zstd: a clean MCR_ECOMPRESS or a readable
 * value. */
static volatile uint8_t sink;
static void decode_value(uint8_t arg, const uint8_t* d, size_t n) {
  char* v = malloc(n ? n : 1);
  if (!v)
    abort();
  memcpy(v, d, n);
  mcr_item_t it = {.value = v,
                   .value_len = n,
                   .flags = MCR_FLAG_ZSTD | arg,
                   .status = MCR_OK};
  mcr__arena_reset(&client->arena);
  int rc = mcr__decode_item(client, &it);
  if (rc != 0 && rc != MCR_ECOMPRESS && rc != MCR_ENOMEM)
    abort();
  if (rc == 0) {
    if (it.flags & MCR_FLAG_ZSTD)
      abort();
    for (size_t i = 0; i < it.value_len; i++)
      sink ^= (uint8_t)it.value[i];
  }
  free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!client) {
    mcr_client_opts_t o;
    mcr_client_opts_init(&o);
    o.servers = "127.0.0.1:1";
    if (mcr_client_new(&client, &o, NULL, 0) != 0)
      abort();
  }
  fuzz_input_t in;
  if (!fuzz_split(data, size, 2, &in))
    return 0;
  uint8_t op = data[0], arg = data[1];
  switch (op % 6) {
    case 0:
      decode_get(arg, in.reply, in.n, in.sizes, in.nsizes);
      break;
    case 1:
      decode_line(arg, in.reply, in.n, in.sizes, in.nsizes);
      break;
    case 2:
      decode_stats(in.reply, in.n, in.sizes, in.nsizes);
      break;
    case 3:
      decode_mget(arg, in.reply, in.n, in.sizes, in.nsizes);
      break;
    case 4:
      decode_batch(arg, in.reply, in.n, in.sizes, in.nsizes);
      break;
    case 5:
      decode_value(arg, in.reply, in.n);
      break;
  }
  return 0;
}
