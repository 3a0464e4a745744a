/* fuzz_meta.c — libFuzzer target for the meta-protocol decoders.
 *
 * Meta replies carry the most structure the client parses: a two-letter
 * code, flag tokens with values (c f t h l s k O b W X Z), data blocks, and
 * in pipelines the opaque matching that charges each reply (or an error
 * line without an opaque) to a command. This target hands fuzzer bytes, in
 * fuzzer-chosen chunks (fuzz_decode.h), to lib/codec_meta.c's decoders: a
 * single command's reply (with the codes a chosen command may get, quiet
 * or not, an opaque expected or not) and a pipeline of 1..8 commands of
 * chosen ops on one node. It also builds the request lines of commands with
 * fuzzer-chosen flags that pass mcr__meta_check. Besides "no crash, leak
 * or undefined behaviour": the decoder contract holds, every recorded
 * offset lies inside the bytes received, every status is in range, and a
 * request line stays within MCR__META_LINE_MAX.
 *
 * Input: byte 0 picks the decoder, byte 1 a parameter, bytes 2..5 request
 * flags, byte 6 how many chunk sizes follow (0..7), those sizes, then the
 * reply.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_decode.h"

static const char ops[] = {'g', 's', 'd', 'a'};

static void check_reply(const fuzz_reply_t* r, const mcr__meta_reply_t* rep) {
  const mcr_meta_result_t* m = &rep->r;
  if (m->status < MCR_ESYS || m->status > MCR_NOT_FOUND)
    abort();
  if ((m->have & MCR_MR_VALUE) &&
      (!fuzz_inside(r, rep->val_off, m->value_len) ||
       m->value_len > FUZZ_VALUE_MAX))
    abort();
  if ((m->have & MCR_MR_KEY) && !rep->key_b64 &&
      !fuzz_inside(r, rep->key_off, m->key_len))
    abort();
  if (!fuzz_inside(r, rep->line_off, rep->line_len))
    abort();
}

/* A request line for op with fuzzer flags, when they pass the checks. */
static void encode(char op, uint32_t flags, uint8_t arg) {
  mcr_meta_opts_t o = {.flags = flags,
                       .ttl = (int64_t)arg - 128,
                       .vivify_ttl = arg,
                       .recache_ttl = arg,
                       .cas = UINT64_MAX - arg,
                       .client_flags = UINT32_MAX,
                       .opaque = UINT32_MAX,
                       .delta = UINT64_MAX,
                       .initial = UINT64_MAX,
                       .mode = "SEAPRID+-"[arg % 9]};
  char key[186];
  memset(key, 'k', sizeof key);
  size_t klen = (flags & MCR_META_BASE64) ? 186 : 1 + arg % 250;
  char longkey[250];
  memset(longkey, 'k', sizeof longkey);
  const char* kp = (flags & MCR_META_BASE64) ? key : longkey;
  char err[128];
  if (mcr__meta_check(op, kp, klen, "v", 1, &o, FUZZ_VALUE_MAX, err,
                      sizeof err) != 0)
    return;
  char line[MCR__META_LINE_MAX + 64];
  size_t n = mcr__meta_request(line, op, kp, klen, 1, &o);
  if (n > MCR__META_LINE_MAX || n < 4 || line[n - 2] != '\r' ||
      line[n - 1] != '\n')
    abort();
}

static void decode_one(uint8_t arg, uint32_t flags, const uint8_t* d, size_t n,
                       const uint8_t* sz, size_t nsz) {
  char op = ops[arg % 4];
  mcr__meta_ctx_t x = {
      .accept = (arg & 0x40) ? MCR__RC_ME | MCR__RC_EN : mcr__meta_codes(op),
      .quiet = arg & 0x10,
      .want_opaque = arg & 0x20,
      .opaque = flags,
      .implied = mcr__meta_implied(op),
      .value_max = FUZZ_VALUE_MAX};
  fuzz_reply_t r;
  fuzz_run(&r, mcr__meta_decode, &x, d, n, sz, nsz);
  if (r.rc == MCR__DONE)
    check_reply(&r, &x.rep);
  free(r.buf);
}

static void decode_pipe(uint8_t arg, uint32_t flags, const uint8_t* d, size_t n,
                        const uint8_t* sz, size_t nsz) {
  size_t k = 1 + arg % 8;
  mcr_meta_cmd_t cmds[8];
  mcr__pcmd_t pc[8];
  size_t order[8];
  for (size_t i = 0; i < k; i++) {
    cmds[i] = (mcr_meta_cmd_t){.op = ops[(flags >> (2 * i)) & 3]};
    pc[i] = (mcr__pcmd_t){.node = 0, .pos = i};
    order[i] = i;
  }
  mcr__pipe_ctx_t x = {.cmds = cmds,
                       .n = k,
                       .pc = pc,
                       .order = order,
                       .count = k,
                       .node = 0,
                       .value_max = FUZZ_VALUE_MAX};
  fuzz_reply_t r;
  fuzz_run(&r, mcr__meta_pipe_decode, &x, d, n, sz, nsz);
  if (x.cur > k)
    abort();
  for (size_t i = 0; i < k; i++) {
    if (pc[i].state == MCR__P_REPLIED)
      check_reply(&r, &pc[i].rep);
    int st = cmds[i].result.status;
    if (st < MCR_ESYS || st > MCR_NOT_FOUND)
      abort();
  }
  free(r.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_input_t in;
  if (!fuzz_split(data, size, 6, &in))
    return 0;
  uint8_t op = data[0], arg = data[1];
  uint32_t flags;
  memcpy(&flags, data + 2, 4);
  encode(ops[op % 4], flags, arg);
  if (op & 0x80)
    decode_pipe(arg, flags, in.reply, in.n, in.sizes, in.nsizes);
  else
    decode_one(arg, flags, in.reply, in.n, in.sizes, in.nsizes);
  return 0;
}
